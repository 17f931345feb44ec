// Live tail of a submission's output: polls a JSON endpoint, no inline script (CSP).
(function () {
  "use strict";
  function start(box) {
    var url = box.getAttribute("data-tail-url");
    var out = box.querySelector("pre");
    var state = document.getElementById("submission-state");
    var every = parseInt(box.getAttribute("data-every") || "3000", 10);
    var timer = null;
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          var atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
          out.textContent = data.text || "";
          if (atBottom) { out.scrollTop = out.scrollHeight; }
          if (state && data.state) { state.textContent = data.state; }
          if (data.final && timer) { clearInterval(timer); timer = null; }
        })
        .catch(function () { /* keep polling */ });
    }
    poll();
    timer = setInterval(poll, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var boxes = document.querySelectorAll("[data-tail-url]");
    for (var i = 0; i < boxes.length; i++) { start(boxes[i]); }
  });
})();
