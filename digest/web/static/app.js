// Progressive enhancement only: every form works without JavaScript.
(function () {
  "use strict";
  // Pre-fill the time zone from the browser when the field still holds the default.
  var tz = document.querySelector("input[data-browser-tz]");
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && zone) tz.value = zone;
  } catch (e) { /* keep UTC */ }
  // Show the weekday picker only for weekly digests.
  var day = document.querySelector("[data-weekly]");
  var radios = document.querySelectorAll("input[name=frequency]");
  function sync() {
    var weekly = document.querySelector("input[name=frequency]:checked");
    if (day) day.hidden = !(weekly && weekly.value === "weekly");
  }
  for (var i = 0; i < radios.length; i++) radios[i].addEventListener("change", sync);
  sync();
})();
