// Live hints from the websocket: refetch the part of the page they name. The socket is only a hint:
// on every (re)connect we refresh too, so nothing missed while offline stays missing.
document.addEventListener("htmx:wsOpen", () => htmx.trigger("#room-list", "refresh"));
document.addEventListener("htmx:oobAfterSwap", (event) => {
  const target = event.detail.target;
  if (target && target.id === "live-signal" && target.dataset.topic === "room-list") {
    htmx.trigger("#room-list", "refresh");
  }
});
