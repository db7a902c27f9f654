// webclient's only script. The websocket carries hints and pre-rendered fragments; the record is the
// server. On every (re)connect the page asks for everything after the last stream position it shows.
(function () {
  "use strict";

  // Coalesce room-list refreshes: a burst of messages costs one request, not one each. A throttle,
  // not a debounce, so a room that never goes quiet still updates its count live.
  let roomListTimer = null;
  function refreshRoomList(delay = 700) {
    if (roomListTimer && delay) return;  // the pending refresh will show the newest counts
    clearTimeout(roomListTimer);
    roomListTimer = setTimeout(() => {
      roomListTimer = null;
      htmx.trigger("#room-list", "refresh");
    }, delay);
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

  // The timeline's order is (data-ts, data-stream): origin_server_ts, then stream position. New
  // rows arrive at the bottom; a back-filled one (an old event with a new, higher stream id) and a
  // gap marker that moved up are misplaced there, and move to just above the first row with a
  // later key. Rows already in place are never moved (a focused edit form stays put).
  function orderKey(li) {
    return [Number(li.dataset.ts), Number(li.dataset.stream)];
  }
  function isLater(a, b) {
    return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
  }
  function dayOf(ts) {
    return "day-" + new Date(ts).toISOString().slice(0, 10).replaceAll("-", "");
  }
  function arrange(list) {
    // Moving an element drops the focus inside it: whoever was on a message's button stays there.
    const focused = document.activeElement;
    placeRows(list);
    if (focused && focused.isConnected && document.activeElement !== focused) {
      focused.focus({ preventScroll: true });
    }
  }
  function placeRows(list) {
    const placed = [];
    list.querySelectorAll(":scope > li.event[data-ts], :scope > li.gap[data-ts]").forEach((li) => {
      const key = orderKey(li);
      const last = placed[placed.length - 1];
      if (!last || !isLater(orderKey(last), key)) {
        placed.push(li);
        return;
      }
      const index = placed.findIndex((row) => isLater(orderKey(row), key));
      const target = placed[index];
      const header = target.previousElementSibling;
      (header && header.matches("li.day") ? header : target).before(li);
      placed.splice(index, 0, li);
    });
    // Day headers: one directly above the first event of each day, none elsewhere.
    const days = new Map();
    list.querySelectorAll(":scope > li.day[id]").forEach((day) => days.set(day.id, day));
    const used = new Set();
    let previous = "";
    list.querySelectorAll(":scope > li.event[data-ts]").forEach((li) => {
      const id = dayOf(Number(li.dataset.ts));
      if (id === previous) return;
      previous = id;
      const day = days.get(id);
      if (!day) return;
      used.add(day);
      if (li.previousElementSibling !== day) li.before(day);
    });
    days.forEach((day) => { if (!used.has(day)) day.remove(); });
  }

  // An open room keeps a bounded DOM: when live messages push it past MAX_ROWS while the reader
  // is at the bottom, the oldest rows leave the page, and "Earlier messages" (the same pagination
  // as on load) brings them back when the reader scrolls up. Never while reading history.
  const MAX_ROWS = 200;
  function trimOldest(list) {
    if (!followBottom || !list.id.startsWith("timeline-")) return;
    const rows = list.querySelectorAll(":scope > li.event");
    const excess = rows.length - (Number(list.dataset.maxRows) || MAX_ROWS);
    if (excess <= 0) return;
    const keep = rows[excess];
    const menu = window.webclientMenu;
    const keepDay = dayOf(Number(keep.dataset.ts));
    for (let node = keep.previousElementSibling; node;) {
      const previous = node.previousElementSibling;
      if (menu && node.contains(menu.element)) {
        if (menu.busy()) return; // someone is writing on that message: trim next time
        menu.park();
      }
      if (!(node.matches("li.day") && node.id === keepDay)) node.remove();
      node = previous;
    }
    const older = document.createElement("li");
    older.className = "older";
    older.id = "older-" + list.id.slice("timeline-".length);
    const link = document.createElement("a");
    const before = "?before=" + keep.dataset.stream;
    link.href = before;
    link.textContent = "Earlier messages";
    link.setAttribute("hx-get", list.dataset.eventsUrl + before);
    link.setAttribute("hx-trigger", "click, intersect once");
    link.setAttribute("hx-target", "#" + older.id);
    link.setAttribute("hx-swap", "outerHTML");
    older.append(link);
    list.prepend(older);
    htmx.process(older);
    arrange(list);
  }

  // Catch-up: everything after the last stream position the page shows, a page at a time, until
  // the server says nothing more follows. One chain at a time; a reconnect during it asks again.
  let catching = false;
  let catchAgain = false;
  async function catchUp() {
    refreshRoomList(0);
    const list = timeline();
    if (!list) return;
    if (catching) { catchAgain = true; return; }
    catching = true;
    try {
      do {
        catchAgain = false;
        let position = Number(list.dataset.last || 0);
        for (;;) {
          const response = await fetch(list.dataset.eventsUrl + "?after=" + position, {
            headers: { "HX-Request": "true" }, credentials: "same-origin",
          });
          if (!response.ok) return; // the next reconnect tries again
          insertRows(list, await response.text());
          dropFilledGaps(list, response.headers.get("X-Gaps"));
          const next = Number(response.headers.get("X-Stream-Position") || position);
          if (!(next > position) && response.headers.get("X-Stream-More") === "1") return;
          position = Math.max(position, next);
          list.dataset.last = String(Math.max(Number(list.dataset.last || 0), position));
          if (response.headers.get("X-Stream-More") !== "1") break;
        }
      } while (catchAgain);
    } catch (error) {
      // Offline: the next reconnect tries again.
    } finally {
      catching = false;
    }
  }

  // Markers of gaps that were filled while the page was not listening.
  function dropFilledGaps(list, current) {
    if (current === null) return;
    const open = new Set(current.split(",").filter(Boolean).map((id) => "gap-" + id));
    list.querySelectorAll(":scope > li.gap[id]").forEach((li) => {
      if (!open.has(li.id)) li.remove();
    });
  }

  function insertRows(list, html) {
    const holder = document.createElement("template");
    holder.innerHTML = html;
    dropKnown(holder.content);
    if (!holder.content.childElementCount) return;
    followBottom = nearBottom();
    htmx.swap(list, holder.innerHTML, { swapStyle: "beforeend", swapDelay: 0, settleDelay: 0 });
    arrange(list);
    rememberLast(list);
    trimOldest(list);
    if (followBottom) scrollToEnd();
  }

  // Never show one event twice: a live push and a catch-up may carry the same rows.
  function dropKnown(fragment) {
    if (!fragment || !fragment.querySelectorAll) return;
    // Updates (an edit, a reaction, a deletion) replace their message; only new rows are deduped.
    fragment.querySelectorAll("li[id]:not([data-update]):not(.older)").forEach((li) => {
      const known = document.getElementById(li.id);
      if (!known) return;
      // A gap marker that moved (filled further) replaces the one shown; anything else is a repeat.
      if (li.matches("li.gap")) known.remove();
      else li.remove();
    });
  }

  // What a person is typing is never thrown away. Message actions live in the page's one shared
  // menu (MessageMenu below), which sits inside the message it acts on: a live update of that
  // message (outerHTML) takes the menu into the new version; when the new version can no longer be
  // acted on (it was deleted) and the menu holds unsent text, the update waits until it is done.
  function typingIn(control) {
    if (!control.matches("textarea, input:not([type=hidden]):not([type=submit]):not([type=button])")) return false;
    if (control === document.activeElement) return true;
    const closed = control.closest("details:not([open])");
    return !closed && control.value !== control.defaultValue;
  }
  const deferred = new Map(); // element id -> the newest update it waits for
  function keepMenu(event) {
    const target = event.detail.target;
    const fragment = event.detail.fragment;
    if (!target || !fragment || !target.querySelectorAll) return;
    // Only swaps that replace the element (outerHTML) can lose the menu; appends add beside it.
    const fresh = target.id && Array.from(fragment.children || []).find((el) => el.id === target.id);
    if (!fresh) return;
    deferred.delete(target.id); // this update supersedes any older one still waiting
    const menu = window.webclientMenu;
    const onButton = document.activeElement;
    if (onButton && target.contains(onButton) && onButton.matches(".act")) {
      // The message is replaced while someone is on its button: keep them on the new one.
      setTimeout(() => document.getElementById(target.id)?.querySelector(".act")?.focus(), 0);
    }
    if (!menu || !target.contains(menu.element)) return;
    const slot = fresh.matches("[data-act]") && fresh.querySelector(":scope > .event-main");
    if (slot) {
      const focused = document.activeElement;
      const caret = focused && menu.element.contains(focused) && "selectionStart" in focused
        ? [focused.selectionStart, focused.selectionEnd] : null;
      const hadFocus = focused && menu.element.contains(focused);
      slot.append(menu.element);
      const act = fresh.querySelector(":scope > .event-main > .act");
      if (act && menu.element.classList.contains("open")) act.setAttribute("aria-expanded", "true");
      if (hadFocus) {
        setTimeout(() => {
          focused.focus();
          if (caret) try { focused.setSelectionRange(caret[0], caret[1]); } catch (error) { /* no caret */ }
        }, 0);
      }
      return;
    }
    if (Array.from(menu.element.querySelectorAll("textarea, input")).some(typingIn)) {
      // Nowhere to keep it: apply the update once the text is sent or put away.
      event.detail.shouldSwap = false;
      deferred.set(target.id, fragment.cloneNode(true));
      return;
    }
    menu.park();
  }
  function applyDeferred() {
    deferred.forEach((fragment, id) => {
      const element = document.getElementById(id);
      if (!element) { deferred.delete(id); return; }
      if (Array.from(element.querySelectorAll("textarea, input")).some(typingIn)) return;
      deferred.delete(id);
      if (window.webclientMenu && element.contains(window.webclientMenu.element)) window.webclientMenu.park();
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
    keepMenu(event);
    // "Earlier messages" offered by a push: only for a page that has none yet.
    event.detail.fragment?.querySelectorAll?.("li.older[id]").forEach((li) => {
      if (document.getElementById(li.id)) li.remove();
    });
  });
  document.addEventListener("htmx:beforeSwap", (event) => {
    const list = timeline();
    const target = event.detail.target;
    if (!list || !target || !list.contains(target)) return;
    const holder = document.createElement("template");
    holder.innerHTML = event.detail.serverResponse;
    if (target.classList.contains("older")) {
      // Older history goes above: its day headers replace the ones further down (arrange then
      // keeps one per day), and rows a live push placed already are not shown twice.
      holder.content.querySelectorAll("li.day[id]").forEach((day) => {
        document.getElementById(day.id)?.remove();
      });
    }
    dropKnown(holder.content);
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
    if (list && list.contains(event.target)) arrange(list);
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
      arrange(list);
      rememberLast(list);
      trimOldest(list);
      dropSettledOutbox();
      if (followBottom) scrollToEnd();
    } else if (list && fresh && list.contains(fresh) && followBottom) {
      // A message updated in place (a reaction, "Seen by") may grow: a reader at the bottom stays
      // there, so the newest message never slides under the composer.
      scrollToEnd();
    }
  });
  // Read receipts: when the page is visible, report the newest event shown, at most every 700 ms.
  // A throttle, not a debounce: in a busy room new messages arrive more often than that, and a
  // timer restarted by each of them would never fire (the badge grew while the room was read).
  let lastReported = "";
  let readTimer = null;
  function reportRead() {
    if (readTimer) return;  // the pending report will take the newest event when it fires
    readTimer = setTimeout(() => {
      readTimer = null;
      const list = timeline();
      if (!list || document.visibilityState !== "visible" || !list.dataset.readUrl) return;
      const newest = Array.from(list.querySelectorAll("li[data-event-id]")).pop();
      if (!newest || newest.dataset.eventId === lastReported) return;
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

  // The websocket always comes back. htmx's ws extension reconnects by itself only after 1006,
  // 1011, 1012 and 1013 and leaves the page dead after any other close (a proxy's 1000, a server's
  // 4000...): reconnect after those too, with the same capped, jittered backoff; catchUp on
  // htmx:wsOpen then fetches what was missed. A "signed out" close (4401: signed out elsewhere,
  // deactivated, session gone) is the one exception: the page goes to the sign-in page instead.
  const SIGNED_OUT = 4401;
  const RETRIED_BY_HTMX = [1006, 1011, 1012, 1013];
  let reconnects = 0;
  let reconnectTimer = null;
  function reconnectDelay(attempt) {
    return Math.random() * 1000 * Math.pow(2, Math.min(attempt, 5));  // full jitter, under 32 s
  }
  htmx.config.wsReconnectDelay = reconnectDelay;
  function signedOut() {
    if (document.body.classList.contains("signed-out")) return;
    document.body.classList.add("signed-out");
    const notice = document.createElement("p");
    notice.className = "alert signed-out-notice";
    notice.setAttribute("role", "alert");
    notice.textContent = "You are signed out. Opening the sign-in page…";
    document.body.prepend(notice);
    const login = document.body.dataset.loginUrl || "/accounts/login/";
    window.location.assign(login + "?next=" + encodeURIComponent(location.pathname + location.search));
  }
  // A request that ended on the sign-in page (the session is gone: the catch-up of a socket the
  // server closed as signed out, a room-list refresh) is not swapped into the page.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const login = document.body.dataset.loginUrl;
    const landed = event.detail.xhr && event.detail.xhr.responseURL;
    if (!login || !landed || new URL(landed).pathname !== login) return;
    event.detail.shouldSwap = false;
    signedOut();
  });
  // Leaving already (a link, the sign-out form): the next page has its own socket. A link that
  // turned out to be a download leaves nothing, so the flag does not outlive a few seconds.
  let leaving = false;
  window.addEventListener("beforeunload", () => {
    leaving = true;
    setTimeout(() => { leaving = false; }, 3000);
  });
  window.addEventListener("pageshow", () => { leaving = false; });
  document.addEventListener("htmx:wsOpen", () => { reconnects = 0; });
  document.addEventListener("htmx:wsClose", (event) => {
    const code = event.detail.event.code;
    if (leaving) return;
    if (code === SIGNED_OUT) { signedOut(); return; }
    if (RETRIED_BY_HTMX.includes(code) || !document.body.contains(event.target)) return;
    const socket = event.detail.socketWrapper;
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(() => socket.reconnect(), reconnectDelay(reconnects++));
  });
  document.addEventListener("DOMContentLoaded", () => {
    const list = timeline();
    if (list) rememberLast(list);
    scrollToEnd();
  });
  // Enter sends from a composer (the room's and the thread's); Shift-Enter starts a new line, and
  // Enter while an input method composes (Japanese) confirms the composition instead.
  document.addEventListener("keydown", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.form?.hasAttribute("data-optimistic")) return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });
})();

// Content-Security-Policy: no inline script and no eval, so behaviour that used to sit in hx-on and
// hx-vals="js:..." attributes lives here, as delegated listeners keyed by data attributes.
(function () {
  "use strict";

  // data-reset-on-success: the form empties after its own request succeeded (not after a request
  // of an element inside it, like the composer's typing notice). data-close-on-success: the
  // <details> around the form closes.
  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (!event.detail.successful || !(form instanceof HTMLFormElement)) return;
    if (form.hasAttribute("data-reset-on-success")) form.reset();
    if (form.hasAttribute("data-close-on-success")) {
      const details = form.closest("details");
      if (details) details.open = false;
    }
  });

  // data-current-room: the room list's refresh says which room the page shows, to highlight it.
  document.addEventListener("htmx:configRequest", (event) => {
    if (!event.detail.elt.hasAttribute("data-current-room")) return;
    event.detail.parameters["current"] = document.body.dataset.roomId || "";
  });
})();

// Message actions: one menu per page (#message-menu), not forms repeated in every message. It moves
// into the message whose actions button is clicked or focused, or which the pointer is over, and
// takes that message's event id; parts marked data-menu-when are left out where they do not apply
// (edit on other people's messages, delete on them unless the viewer may redact them, "Thread"
// inside a thread). While a form in it is open or focused it stays where it is. Keyboard: the
// button opens it (focus moves in), Esc closes it and focus returns to the button.
(function () {
  "use strict";
  let menu = null;
  let home = null;
  const parts = []; // [element, placeholder comment, condition]

  function host() { return menu && menu.closest("li.event"); }
  function actButton(li) { return li && li.querySelector(":scope > .event-main > .act"); }
  function pinned() {
    return menu.classList.contains("open") || !!menu.querySelector("details[open]")
      || menu.contains(document.activeElement);
  }
  function busy() {
    return Array.from(menu.querySelectorAll("details[open] textarea")).some(
      (t) => t === document.activeElement || t.value !== t.defaultValue);
  }
  function source(li) {
    if (li.dataset.source !== undefined) return li.dataset.source;
    const body = li.querySelector(".body");
    return body ? body.textContent : "";
  }
  function applies(condition, li) {
    if (condition === "own") return li.hasAttribute("data-own");
    if (condition === "not-in-thread") return !li.hasAttribute("data-in-thread");
    return true;
  }
  function close(returnFocus) {
    const li = host();
    menu.classList.remove("open");
    menu.querySelectorAll("details[open]").forEach((d) => { d.open = false; });
    const act = actButton(li);
    if (act) {
      act.setAttribute("aria-expanded", "false");
      if (returnFocus) act.focus();
    }
  }
  function park() {
    if (!menu) return;
    close(false);
    if (menu.parentElement !== home) home.append(menu);
  }
  function attach(li) {
    if (!document.contains(menu)) home.append(menu); // its message left the page
    if (host() === li) return;
    close(false);
    const eventId = li.dataset.eventId;
    parts.forEach(([element, mark, condition]) => {
      if (applies(condition, li)) {
        if (mark.nextSibling !== element) { mark.after(element); htmx.process(element); }
      } else element.remove();
    });
    menu.querySelectorAll("input[name=event_id]").forEach((input) => { input.value = eventId; });
    const thread = menu.querySelector("a[data-menu-when=not-in-thread]");
    if (thread) {
      thread.dataset.base = thread.dataset.base || thread.getAttribute("href");
      thread.setAttribute("href", thread.dataset.base + "?root=" + encodeURIComponent(eventId));
    }
    menu.querySelectorAll("form").forEach((form) => form.reset());
    const sender = li.querySelector(".sender");
    const reply = menu.querySelector("form:has(> input[name=action][value=reply]) textarea");
    if (reply) reply.setAttribute("aria-label", "Reply to " + (sender ? sender.textContent : ""));
    const edit = menu.querySelector("form:has(> input[name=action][value=edit]) textarea");
    if (edit && li.hasAttribute("data-own")) edit.value = edit.defaultValue = source(li);
    li.querySelector(":scope > .event-main").append(menu);
  }
  function open(li) {
    attach(li);
    menu.classList.add("open");
    const act = actButton(li);
    if (act) act.setAttribute("aria-expanded", "true");
    const first = menu.querySelector("button, summary, a[href]");
    if (first) first.focus();
  }

  document.addEventListener("DOMContentLoaded", () => {
    menu = document.getElementById("message-menu");
    if (!menu) return;
    home = menu.parentElement;
    menu.querySelectorAll("[data-menu-when]").forEach((element) => {
      const mark = document.createComment(element.dataset.menuWhen);
      element.before(mark);
      parts.push([element, mark, element.dataset.menuWhen]);
    });
    window.webclientMenu = { element: menu, park, busy };
  });

  document.addEventListener("click", (event) => {
    if (!menu) return;
    const act = event.target.closest("li.event[data-act] .act");
    if (act) {
      const li = act.closest("li.event");
      if (host() === li && menu.classList.contains("open")) close(true);
      else open(li);
      return;
    }
    // A reaction under a message: add the same one, or take ours back.
    const chip = event.target.closest("li.event .reaction[data-key]");
    if (chip) {
      const form = document.getElementById("reaction-form");
      const li = chip.closest("li.event");
      form.elements.action.value = chip.dataset.mine ? "unreact" : "react";
      form.elements.event_id.value = chip.dataset.mine || li.dataset.eventId;
      form.elements.key.value = chip.dataset.key;
      form.requestSubmit();
      return;
    }
    if (menu.classList.contains("open") && !menu.contains(event.target) && !menu.querySelector("details[open]")) {
      close(false);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !menu || !host()) return;
    if (!menu.classList.contains("open") && !menu.contains(document.activeElement)) return;
    event.preventDefault();
    close(true);
  });
  // Hover and keyboard focus bring the menu to a message, unless it is in use elsewhere.
  function follow(event) {
    if (!menu) return;
    const li = event.target.closest && event.target.closest("ol.timeline li.event[data-act]");
    if (!li || host() === li) return;
    if (event.type === "focusin" && !event.target.matches(".act")) return;
    if (document.contains(menu) && host() && pinned()) return;
    attach(li);
  }
  document.addEventListener("mouseover", follow);
  document.addEventListener("focusin", follow);
  // The edit box opens with the message's current text unless the person changed it already.
  document.addEventListener("toggle", (event) => {
    const details = event.target;
    if (!menu || !details.open || !menu.contains(details)) return;
    const edit = details.querySelector("form:has(> input[name=action][value=edit]) textarea");
    const li = host();
    if (edit && li && edit.value === edit.defaultValue) edit.value = edit.defaultValue = source(li);
    const box = details.querySelector("textarea");
    if (box) box.focus();
  }, true);
  // A reaction or deletion sent: the menu has done its job.
  document.addEventListener("htmx:afterRequest", (event) => {
    if (!menu || !event.detail.successful || !menu.contains(event.detail.elt)) return;
    if (event.detail.elt.querySelector("textarea")) return; // reply and edit close their own box
    menu.classList.remove("open");
    const act = actButton(host());
    if (act) act.setAttribute("aria-expanded", "false");
  });
})();

// The own message shows the moment Enter is pressed: a "sending…" row goes in before the POST
// leaves, and the server's own rendering of the outbox row replaces it when the answer comes (the
// echo then replaces that, as before). A refusal or an unreachable server marks the row "not sent"
// with the reason and a Retry, and puts the text back in the composer if it is empty. POSTs leave
// one after another, so messages keep the order they were written in.
(function () {
  "use strict";
  let sequence = 0;
  let queue = Promise.resolve();

  function localRow(text) {
    const li = document.createElement("li");
    li.className = "event own outbox pending";
    li.id = "local-" + (++sequence);
    li.innerHTML = '<div class="event-main"><div class="event-head"><span class="sender">You</span>'
      + '<span class="status" role="status">sending…</span></div><div class="body"></div></div>';
    li.querySelector(".body").textContent = text;
    return li;
  }
  function failed(li, form, text, reason) {
    li.classList.replace("pending", "failed");
    li.querySelector(".status").textContent = "not sent";
    const line = document.createElement("p");
    line.className = "error";
    line.setAttribute("role", "alert");
    line.textContent = reason + " ";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "link";
    retry.textContent = "Retry";
    retry.addEventListener("click", () => {
      li.remove();
      const box = form.querySelector("textarea[name=body]");
      if (box && box.value === text) box.value = ""; // it was put back there: not twice
      send(form, text);
    });
    line.append(retry);
    li.querySelector(".event-main").append(line);
    const box = form.querySelector("textarea[name=body]");
    if (box && !box.value) box.value = text;
  }
  async function post(form, data, li, text) {
    let response;
    try {
      // The attribute, not form.action: a form with a field named "action" (the thread composer's)
      // shadows the property with that field.
      response = await fetch(form.getAttribute("action"), {
        method: "POST", body: data, credentials: "same-origin", headers: { "HX-Request": "true" },
      });
    } catch (error) {
      failed(li, form, text, "Could not reach the server.");
      return;
    }
    const login = document.body.dataset.loginUrl;
    if (login && response.redirected && new URL(response.url).pathname === login) {
      failed(li, form, text, "You are signed out.");
      return;
    }
    const html = await response.text().catch(() => "");
    const holder = document.createElement("template");
    holder.innerHTML = html;
    const row = holder.content.querySelector("li");
    if (!response.ok || !row || row.matches(".error")) {
      const said = row ? row.textContent.trim() : (html.length < 200 ? html.trim() : "");
      failed(li, form, text, said || "The server did not take it (" + response.status + ").");
      return;
    }
    const txn = row.id.startsWith("txn-") ? row.id.slice(4) : "";
    const echoed = txn && document.querySelector('ol.timeline li[data-txn="' + CSS.escape(txn) + '"]');
    if (echoed || document.getElementById(row.id)) { li.remove(); return; }
    li.replaceWith(row);
    htmx.process(row);
  }
  function send(form, text) {
    const outbox = document.querySelector(form.dataset.optimistic);
    const li = localRow(text);
    outbox.append(li);
    const main = document.querySelector(".main");
    if (main) main.scrollTop = main.scrollHeight;
    const data = new FormData(form);
    data.set("body", text);
    queue = queue.then(() => post(form, data, li, text));
  }
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-optimistic")) return;
    event.preventDefault();
    const box = form.querySelector("textarea[name=body]");
    const text = box.value;
    if (!text.trim()) return;
    box.value = "";
    document.getElementById("mention-suggestions")?.setAttribute("hidden", "");
    send(form, text);
  });

  // Unread counts in the page title and a favicon badge, from the room list's totals (the
  // homeserver's push-rule counts): every room-list refresh, live or polled, updates both.
  let baseTitle = null;
  let baseIcon = null;
  function badgeIcon(unread, mentions) {
    const text = (mentions || unread) > 99 ? "99+" : String(mentions || unread);
    const colour = mentions ? "#d93025" : "#5b6478";
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">' +
      '<rect width="32" height="32" rx="7" fill="#2f6fed"/><path d="M8 10h16v10H14l-6 5z" fill="#fff"/>' +
      '<circle cx="23" cy="9" r="9" fill="' + colour + '"/>' +
      '<text x="23" y="13" font-size="' + (text.length > 2 ? 7 : text.length > 1 ? 9 : 12) + '" font-family="sans-serif"' +
      ' font-weight="700" text-anchor="middle" fill="#fff">' + text + "</text></svg>";
    return "data:image/svg+xml," + encodeURIComponent(svg);
  }
  function showUnread() {
    const list = document.getElementById("room-list");
    const icon = document.querySelector('link[rel="icon"]');
    if (baseTitle === null) baseTitle = document.title;
    if (icon && baseIcon === null) baseIcon = icon.getAttribute("href");
    const unread = Number(list?.dataset.unread || 0);
    const mentions = Number(list?.dataset.mentions || 0);
    let prefix = "";
    if (unread && mentions) prefix = "(" + unread + " · @" + mentions + ") ";
    else if (unread || mentions) prefix = "(" + (unread || "@" + mentions) + ") ";
    document.title = prefix + baseTitle;
    if (icon) icon.setAttribute("href", unread || mentions ? badgeIcon(unread, mentions) : baseIcon);
  }
  document.addEventListener("DOMContentLoaded", showUnread);
  document.addEventListener("htmx:afterSettle", showUnread);  // cheap: two attributes

  // Browser notifications while the tab is hidden, for mentions (and keywords) and direct
  // messages: a room-list refresh (the live hint) whose counts rose since the last one. The
  // counts are the homeserver's, so a room set to "off" or "mentions" stays quiet here too.
  let seenCounts = null;
  function notifyRisen() {
    const now = new Map();
    document.querySelectorAll("#room-list a.room-entry[data-unread]").forEach((a) => {
      now.set(a.getAttribute("href"), {
        unread: Number(a.dataset.unread), mentions: Number(a.dataset.mentions),
        direct: a.hasAttribute("data-direct"), name: a.querySelector(".room-name")?.textContent || "",
      });
    });
    if (!document.getElementById("room-list")) return;
    const before = seenCounts;
    seenCounts = now;
    if (!before || document.visibilityState !== "hidden") return;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    now.forEach((counts, href) => {
      const was = before.get(href) || { unread: 0, mentions: 0 };
      let body = "";
      if (counts.mentions > was.mentions) {
        body = counts.mentions === 1 ? "You were mentioned" : counts.mentions + " mentions";
      } else if (counts.direct && counts.unread > was.unread) {
        body = counts.unread === 1 ? "New message" : counts.unread + " new messages";
      }
      if (!body) return;
      const shown = new Notification(counts.name, { body, tag: href, icon: baseIcon || undefined });
      shown.onclick = () => { window.focus(); location.href = href; };
    });
  }
  document.addEventListener("DOMContentLoaded", notifyRisen);
  document.addEventListener("htmx:afterSettle", notifyRisen);

  // The Notifications page's button asks for permission (browsers only allow it on a click).
  function permissionState() {
    const state = document.getElementById("browser-notifications-state");
    if (!state) return;
    const permission = "Notification" in window ? Notification.permission : "unsupported";
    state.textContent = {
      granted: "Allowed in this browser.",
      denied: "Blocked: allow notifications for this site in the browser's settings.",
      unsupported: "This browser cannot show notifications.",
    }[permission] || "";
    document.getElementById("browser-notifications").hidden = permission !== "default";
  }
  document.addEventListener("DOMContentLoaded", permissionState);
  document.addEventListener("click", (event) => {
    if (!event.target.closest?.("#browser-notifications")) return;
    Notification.requestPermission().then(permissionState);
  });
})();

// "Send later" (templates/rooms/scheduled.html): the time picked is the person's own; the server
// gets it with the browser's offset for that date (so a summer date keeps summer time). Times the
// server rendered in UTC are shown in local time, a scheduled message leaves the panel once due
// (its echo comes into the timeline), and a successful schedule empties the composer.
(function () {
  "use strict";
  function pad(n) { return String(n).padStart(2, "0"); }
  function localValue(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate())
      + "T" + pad(date.getHours()) + ":" + pad(date.getMinutes());
  }
  function within(root, selector) { // htmx:load's element may be the match itself
    const found = Array.from(root.querySelectorAll(selector));
    return root.matches && root.matches(selector) ? [root, ...found] : found;
  }
  function localize(root) {
    within(root, "time[data-local]").forEach((time) => {
      const date = new Date(time.getAttribute("datetime"));
      if (!isNaN(date)) {
        time.textContent = date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
      }
    });
    within(root, "input[type=datetime-local][data-utc]").forEach((input) => {
      const date = new Date(input.dataset.utc);
      if (!isNaN(date) && !input.value) input.value = localValue(date);
    });
    root.querySelectorAll("input#send-later-at").forEach((input) => {
      input.min = localValue(new Date());
    });
  }
  document.addEventListener("htmx:load", (event) => localize(event.detail.elt));
  document.addEventListener("DOMContentLoaded", () => localize(document));
  document.addEventListener("htmx:configRequest", (event) => {
    if (!event.detail.elt.hasAttribute("data-send-later")) return;
    const value = event.detail.parameters["send_at"];
    const date = value ? new Date(value) : null;
    event.detail.parameters["tz_offset"] = String(
      date && !isNaN(date) ? date.getTimezoneOffset() : new Date().getTimezoneOffset());
  });
  document.addEventListener("scheduled", (event) => {
    const form = event.target.closest("form");
    const box = form && form.querySelector("textarea[name=body]");
    if (box) box.value = "";
    const details = event.target.closest("details.send-later");
    if (details) {
      details.open = false;
      const input = details.querySelector("input[name=send_at]");
      if (input) input.value = "";
    }
  });
  setInterval(() => {
    document.querySelectorAll(".scheduled-item[data-due]").forEach((item) => {
      if (Date.parse(item.dataset.due) <= Date.now()) {
        const list = item.parentElement;
        item.remove();
        if (list && !list.children.length) {
          list.previousElementSibling?.remove(); // the "Scheduled" heading
          list.remove();
        }
      }
    });
  }, 5000);
})();

// Reminders (templates/rooms/scheduled.html#reminder-notices): a notice pushed into
// #reminder-notices also raises a browser notification when the person allowed them (asked the
// first time they set a reminder: a click, as browsers require). Dismiss removes the notice.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", (event) => {
    if (!event.detail.elt.hasAttribute("data-remind")) return;
    if ("Notification" in window && Notification.permission === "default") {
      Notification.requestPermission().catch(() => {});
    }
  });
  function announce(notice) {
    if (notice.dataset.announced || !("Notification" in window)) return;
    notice.dataset.announced = "1";
    if (Notification.permission === "granted") {
      try { new Notification(notice.dataset.notify || "Reminder"); } catch (error) { /* page only */ }
    }
  }
  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("reminder-notices");
    if (!box) return;
    new MutationObserver(() => {
      box.querySelectorAll(".reminder-notice[data-notify]").forEach(announce);
    }).observe(box, { childList: true });
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-dismiss-notice]");
    if (button) button.closest(".reminder-notice")?.remove();
  });
})();
