/* Before the first paint: the theme and text size the rater chose on the rater page
 * (localStorage, this browser). Loaded synchronously in <head> by base.html; no inline script. */
(function () {
  "use strict";
  var root = document.documentElement;
  try {
    var theme = localStorage.getItem("assay:theme");
    if (theme === "dark" || theme === "light") root.setAttribute("data-theme", theme);
    var size = localStorage.getItem("assay:text-size");
    if (size && /^-?[0-3]$/.test(size)) root.setAttribute("data-text-size", size);
  } catch (err) { /* storage off: the defaults */ }
})();
