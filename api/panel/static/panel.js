// Antaca panel: the only script (the Content-Security-Policy forbids
// inline script). It asks before destructive actions and refreshes the live
// authorisations table; every page works without it.
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var b = ev.submitter;
    var msg = b && b.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); }
  });
  var rows = document.getElementById("liverows");
  if (!rows) { return; }
  var follow = document.getElementById("follow");
  var src = rows.getAttribute("data-src") + window.location.search;
  function tick() {
    if (follow && !follow.checked) { return; }
    fetch(src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { rows.innerHTML = html; } })
      .catch(function () {});
  }
  window.setInterval(tick, 2000);
})();
