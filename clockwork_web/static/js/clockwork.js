// Clockwork: small progressive enhancements (no inline scripts: CSP).
(function () {
  "use strict";

  // With the theme left to the system, the header switch offers the opposite
  // of what the system shows now.
  function syncThemeSwitch() {
    var html = document.documentElement;
    var button = document.getElementById("switch-theme");
    if (!button || html.getAttribute("data-theme") !== "system") return;
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    button.value = dark ? "light" : "dark";
    button.textContent = dark ? button.dataset.labelLight : button.dataset.labelDark;
  }

  // Controls marked data-autosubmit submit their form when changed.
  function autosubmit() {
    document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () {
        if (el.form) el.form.requestSubmit();
      });
    });
  }

  // Buttons marked data-confirm ask before submitting.
  function confirmations() {
    document.querySelectorAll("[data-confirm]").forEach(function (el) {
      el.addEventListener("click", function (event) {
        if (!window.confirm(el.dataset.confirm)) event.preventDefault();
      });
    });
  }

  // Copy buttons: data-copy-target names the element whose text is copied.
  function copyButtons() {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.dataset.copyTarget);
        if (!target || !navigator.clipboard) return;
        navigator.clipboard.writeText(target.textContent.trim()).then(function () {
          button.textContent = button.dataset.copiedLabel || button.textContent;
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    syncThemeSwitch();
    autosubmit();
    confirmations();
    copyButtons();
    if (window.matchMedia) {
      var mq = window.matchMedia("(prefers-color-scheme: dark)");
      if (mq.addEventListener) mq.addEventListener("change", syncThemeSwitch);
    }
  });
})();
