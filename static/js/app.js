// webclient's only script. The websocket carries hints and pre-rendered fragments; the record is the
// server. On every (re)connect the page asks for everything after the last stream position it shows.
(function () {
  "use strict";

  // Coalesce room-list refreshes: a burst of messages costs one request, not one each.
  let roomListTimer = null;
  function refreshRoomList(delay = 700) {
    clearTimeout(roomListTimer);
    roomListTimer = setTimeout(() => htmx.trigger("#room-list", "refresh"), delay);
  }

  function timeline() {
    return document.querySelector("ol.timeline[data-events-url]");
  }

  function rememberLast(list) {
    let last = Number(list.dataset.last || 0);
    list.querySelectorAll("li[data-stream]").forEach((li) => {
      last = Math.max(last, Number(li.dataset.stream));
    });
    list.dataset.last = String(last);
  }

  function scrollToEnd() {
    const main = document.querySelector(".main");
    if (main) main.scrollTop = main.scrollHeight;
  }

  // Follow new messages only when the reader is already at the bottom, not while reading history.
  let followBottom = true;
  function nearBottom() {
    const main = document.querySelector(".main");
    return !main || main.scrollHeight - main.scrollTop - main.clientHeight < 150;
  }

  function catchUp() {
    const list = timeline();
    refreshRoomList(0);
    if (!list) return;
    const url = list.dataset.eventsUrl + "?after=" + encodeURIComponent(list.dataset.last || "0");
    // Offline: the next reconnect tries again.
    htmx.ajax("GET", url, { target: list, swap: "beforeend", source: document.body }).catch(() => {});
  }

  // Never show one event twice: a live push and a catch-up may carry the same rows.
  function dropKnown(fragment) {
    if (!fragment || !fragment.querySelectorAll) return;
    // Updates (an edit, a reaction, a deletion) replace their message; only new rows are deduped.
    fragment.querySelectorAll("li[id]:not([data-update])").forEach((li) => {
      if (document.getElementById(li.id)) li.remove();
    });
  }

  // What a person is typing is never thrown away: a live update of an element that holds a form
  // in use (focused, or with unsent text in view) keeps that form, moved into the new version;
  // when the new version has no place for it, the update waits until the form is done.
  function typingIn(control) {
    if (!control.matches("textarea, input:not([type=hidden]):not([type=submit]):not([type=button])")) return false;
    if (control === document.activeElement) return true;
    const closed = control.closest("details:not([open])");
    return !closed && control.value !== control.defaultValue;
  }
  function formKey(form) {
    if (form.id) return "#" + CSS.escape(form.id);
    const action = form.querySelector("input[name=action]");
    return action ? 'form:has(> input[name=action][value="' + CSS.escape(action.value) + '"])' : null;
  }
  const deferred = new Map(); // element id -> the newest update it waits for
  function keepBusyForms(event) {
    const target = event.detail.target;
    const fragment = event.detail.fragment;
    if (!target || !fragment || !target.querySelectorAll) return;
    // Only swaps that replace the element (outerHTML) can lose a form; appends add beside it.
    if (!target.id || !Array.from(fragment.children || []).some((el) => el.id === target.id)) return;
    deferred.delete(target.id); // this update supersedes any older one still waiting
    const busy = Array.from(target.querySelectorAll("form")).filter(
      (form) => Array.from(form.elements).some(typingIn));
    if (!busy.length) return;
    const focused = document.activeElement;
    const caret = focused && "selectionStart" in focused ? [focused.selectionStart, focused.selectionEnd] : null;
    const moves = busy.map((form) => {
      const key = formKey(form);
      const place = key && fragment.querySelector(key);
      const keep = form.parentElement.matches("details") ? form.parentElement : form;
      const slot = place && (keep === form ? place : place.parentElement.matches("details") && place.parentElement);
      return slot ? [keep, slot] : null;
    });
    if (moves.includes(null)) {
      // Nowhere to keep it: apply the update once the form is sent or put away.
      event.detail.shouldSwap = false;
      deferred.set(target.id, fragment.cloneNode(true));
      return;
    }
    moves.forEach(([keep, slot]) => slot.replaceWith(keep));
    if (caret && document.contains(focused) === false) {
      setTimeout(() => {
        focused.focus();
        try { focused.setSelectionRange(caret[0], caret[1]); } catch (error) { /* no caret here */ }
      }, 0);
    }
  }
  function applyDeferred() {
    deferred.forEach((fragment, id) => {
      const element = document.getElementById(id);
      if (!element) { deferred.delete(id); return; }
      if (Array.from(element.querySelectorAll("textarea, input")).some(typingIn)) return;
      deferred.delete(id);
      const fresh = fragment.firstElementChild;
      element.replaceWith(fragment);
      if (fresh) htmx.process(fresh);
    });
  }
  document.addEventListener("htmx:afterRequest", () => setTimeout(applyDeferred, 0));
  document.addEventListener("toggle", () => setTimeout(applyDeferred, 0), true);
  document.addEventListener("focusout", () => setTimeout(applyDeferred, 0));

  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    followBottom = nearBottom();
    dropKnown(event.detail.fragment);
    keepBusyForms(event);
  });
  document.addEventListener("htmx:beforeSwap", (event) => {
    const list = timeline();
    const target = event.detail.target;
    if (!list || !target || !list.contains(target)) return;
    const holder = document.createElement("template");
    holder.innerHTML = event.detail.serverResponse;
    if (target.classList.contains("older")) {
      // Older history goes above: its day headers replace the ones further down.
      holder.content.querySelectorAll("li.day[id]").forEach((day) => {
        document.getElementById(day.id)?.remove();
      });
    } else {
      dropKnown(holder.content);
    }
    event.detail.serverResponse = holder.innerHTML;
  });
  // A message's echo can arrive before its "sending" row is shown: drop rows already settled.
  function dropSettledOutbox() {
    document.querySelectorAll(".outbox-list li[id^='txn-']").forEach((li) => {
      const txn = li.id.slice(4);
      if (document.querySelector('ol.timeline li[data-txn="' + CSS.escape(txn) + '"]')) li.remove();
    });
  }

  document.addEventListener("htmx:afterSettle", (event) => {
    const list = timeline();
    if (list) rememberLast(list);
    dropSettledOutbox();
    if (event.detail.target && event.detail.target.classList.contains("outbox-list")) scrollToEnd();
  });
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    // An outerHTML swap reports the replaced element as detail.target: read the new one.
    const fresh = event.target;
    if (fresh && fresh.id === "live-signal" && fresh.dataset.topic === "room-list") {
      refreshRoomList();
      // A space page lists its rooms and which of them we joined: keep that current too.
      if (document.getElementById("space-children")) htmx.trigger("#space-children", "refresh");
    }
    const target = event.detail.target;
    const list = timeline();
    if (list && target === list) {
      rememberLast(list);
      dropSettledOutbox();
      if (followBottom) scrollToEnd();
    }
  });
  // Read receipts: when the page is visible, report the newest event shown (at most once a second).
  let lastReported = "";
  let readTimer = null;
  function reportRead() {
    const list = timeline();
    if (!list || document.visibilityState !== "visible" || !list.dataset.readUrl) return;
    const newest = Array.from(list.querySelectorAll("li[data-event-id]")).pop();
    if (!newest || newest.dataset.eventId === lastReported) return;
    clearTimeout(readTimer);
    readTimer = setTimeout(() => {
      lastReported = newest.dataset.eventId;
      htmx.ajax("POST", list.dataset.readUrl, {
        values: { event_id: lastReported }, swap: "none", source: document.body,
      }).catch(() => { lastReported = ""; });
    }, 700);
  }
  document.addEventListener("visibilitychange", reportRead);
  document.addEventListener("htmx:afterSettle", reportRead);
  document.addEventListener("htmx:oobAfterSwap", reportRead);
  document.addEventListener("DOMContentLoaded", reportRead);

  // Upload progress: the request's own progress events drive the form's <progress>.
  document.addEventListener("htmx:xhr:progress", (event) => {
    const bar = event.target.closest?.("form.upload")?.querySelector("progress");
    if (!bar || !event.detail.lengthComputable) return;
    bar.hidden = false;
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    const bar = event.target.closest?.("form.upload")?.querySelector("progress");
    if (bar) { bar.hidden = true; bar.value = 0; }
  });

  // Mentions: "@" and a few letters in the composer offer the room's members; picking one inserts
  // a matrix.to pill, which the server turns into an intentional mention (m.mentions).
  let mentionTimer = null;
  function mentionToken(textarea) {
    const before = textarea.value.slice(0, textarea.selectionStart);
    const match = before.match(/(^|\s)@([^\s@]{1,40})$/);
    return match ? { start: before.length - match[2].length - 1, term: match[2] } : null;
  }
  document.addEventListener("input", (event) => {
    const textarea = event.target;
    const list = document.getElementById("mention-suggestions");
    if (textarea.id !== "composer-body" || !list) return;
    clearTimeout(mentionTimer);
    const token = mentionToken(textarea);
    if (!token) { list.hidden = true; return; }
    mentionTimer = setTimeout(async () => {
      const response = await fetch(list.dataset.url + "?q=" + encodeURIComponent(token.term));
      list.innerHTML = response.ok ? await response.text() : "";
      list.hidden = !list.children.length;
    }, 150);
  });
  document.addEventListener("click", (event) => {
    const choice = event.target.closest("#mention-suggestions button");
    if (!choice) return;
    const textarea = document.getElementById("composer-body");
    const token = mentionToken(textarea);
    if (!token) return;
    const pill = "[" + choice.dataset.name.replace(/[\[\]]/g, "") + "](https://matrix.to/#/" + choice.dataset.userId + ") ";
    textarea.value = textarea.value.slice(0, token.start) + pill + textarea.value.slice(textarea.selectionStart);
    document.getElementById("mention-suggestions").hidden = true;
    textarea.focus();
  });

  // The emoji picker inserts at the caret and keeps the composer focused.
  document.addEventListener("click", (event) => {
    const choice = event.target.closest(".emoji-grid button[data-emoji]");
    if (!choice) return;
    const textarea = document.getElementById("composer-body");
    const at = textarea.selectionStart ?? textarea.value.length;
    textarea.value = textarea.value.slice(0, at) + choice.dataset.emoji + textarea.value.slice(textarea.selectionEnd ?? at);
    textarea.selectionStart = textarea.selectionEnd = at + choice.dataset.emoji.length;
    choice.closest("details").open = false;
    textarea.focus();
  });

  document.addEventListener("htmx:wsOpen", catchUp);
  document.addEventListener("DOMContentLoaded", () => {
    const list = timeline();
    if (list) rememberLast(list);
    scrollToEnd();
    const composer = document.getElementById("composer-body");
    if (composer) {
      composer.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          composer.form.requestSubmit();
        }
      });
    }
  });
})();
