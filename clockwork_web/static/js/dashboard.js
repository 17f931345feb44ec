// Quietly refresh the live part of the dashboard every minute, without reloading.
(function () {
  "use strict";
  var PERIOD_MS = 60000;

  function refresh(box) {
    if (document.hidden) return;
    box.setAttribute("aria-busy", "true");
    fetch(box.dataset.liveUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = document.createDocumentFragment();
        Array.prototype.forEach.call(doc.body.childNodes, function (node) {
          fresh.appendChild(document.importNode(node, true));
        });
        box.replaceChildren(fresh);
      })
      .catch(function () { /* keep what is shown; try again next time */ })
      .finally(function () { box.removeAttribute("aria-busy"); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("live");
    if (!box) return;
    window.setInterval(function () { refresh(box); }, PERIOD_MS);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) refresh(box);
    });
  });
})();
