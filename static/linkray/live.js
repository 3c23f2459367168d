/* Live parts of LinkRay's pages (htmx polling): freshness note, session end. */
(function () {
  // Say when the live parts last came in, and say loudly when they stop coming: a page that
  // silently keeps showing "Connected" while LinkRay is unreachable would lie to the operator.
  document.addEventListener("htmx:afterRequest", function (event) {
    var note = document.querySelector(".live-note");
    if (!note) { return; }
    // The same format and zone as every time the server renders (|sitetime).
    var time = new Date().toLocaleString("sv-SE", {timeZone: document.body.dataset.timeZone});
    if (event.detail.successful) {
      note.textContent = "live, updated " + time;
      note.classList.remove("stale");
    } else {
      note.textContent = "not updating: LinkRay did not answer at " + time + "; what you see may be out of date";
      note.classList.add("stale");
    }
  });
  // An unchanged fragment (the browser got a 304 and hands back its cached copy) is not
  // swapped in again: no DOM churn, and a half-clicked button stays put.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var text = event.detail.xhr.responseText;
    if (event.detail.xhr.status === 200 && target && target.dataset.lastFragment === String(text.length) && target._lastFragment === text) {
      event.detail.shouldSwap = false;
    } else if (target) {
      target.dataset.lastFragment = String(text.length);
      target._lastFragment = text;
    }
  });
  // A poll that hits the login page means the session ended: reload, so the whole page goes
  // to the login form (and comes back here afterwards) instead of a login form in a table.
  document.addEventListener("htmx:beforeSwap", function (event) {
    // Several live parts may poll at once: reload once, or the second reload aborts the first.
    if (event.detail.xhr.responseURL.indexOf("" + document.body.dataset.loginUrl + "") !== -1) {
      event.detail.shouldSwap = false;
      if (!window.linkrayReloading) { window.linkrayReloading = true; window.location.reload(); }
    }
  });
})();
