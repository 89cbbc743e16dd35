/* The revision page (/judgments/{id}/revise): the item as the rater judged it, with the stored
 * verdict selected. Runs before rater.js, which then does the keys, the ranking and the post
 * (a plain form post to data-revise-action: the answer is a redirect back, with a message).
 */
(function () {
  "use strict";

  var queue = document.querySelector("#queue[data-revise]");
  var form = queue && queue.querySelector("form.verdict");
  if (!form) return;
  var d = queue.dataset;
  form.action = d.reviseAction;
  ["[data-skip]", "[data-skip-code]", "[data-skip-text]", "form.skip-form"].forEach(function (selector) {
    var node = queue.querySelector(selector);
    if (node) node.remove();
  });
  // No skipping here (the legend, written for this page by the server, lists only the keys that work).
  var submit = form.querySelector("[data-submit]");
  if (submit && submit.firstChild) submit.firstChild.textContent = "Save revision ";

  function pick(name, value) {
    var radios = form.querySelectorAll("input[name=" + name + "]");
    for (var i = 0; i < radios.length; i++) {
      if (radios[i].value === value) radios[i].checked = true;
    }
  }
  if (d.currentVerdict) pick("verdict", d.currentVerdict);
  if (d.currentStrength) pick("strength", d.currentStrength);
  if (d.currentRanking) {
    var list = form.querySelector("[data-rank-list]");
    var ids = d.currentRanking.split(",");
    ids.forEach(function (id) {
      var items = list ? list.children : [];
      for (var i = 0; i < items.length; i++) {
        if (items[i].dataset.candidate === id) { list.appendChild(items[i]); break; }
      }
    });
    form._ranked = ids.length; // rater.js shows the ranking as placed
  }
  var rationale = form.querySelector("textarea[name=rationale]");
  if (rationale) rationale.value = d.currentRationale || "";
  var answerBox = form.querySelector("[data-answer-box]"); // a subtask answered in a box (text, number)
  if (answerBox) answerBox.value = d.currentAnswer || "";
})();
