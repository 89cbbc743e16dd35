/* Critiques on the rater page: keys to reach and rate them, the check that required ratings are
 * given, and quoting a selection into the rater's own critique (as a code-point span, spans.js).
 * Loaded before rater.js; rater.js asks `AssayCritiques.missing(form)` before a verdict is sent. */
(function () {
  "use strict";

  function typing(target) {
    return target.closest && target.closest("textarea, select, input:not([type=radio]):not([type=checkbox])");
  }
  function currentSlot() { return document.querySelector("#queue > .slot:not([hidden])"); }

  /* The message when the project requires ratings and a shown critique lacks one. */
  function missing(form) {
    if (!form.hasAttribute("data-ratings-required")) return null;
    var slot = form.closest(".slot");
    var unrated = Array.prototype.filter.call(slot.querySelectorAll("[data-critique]"), function (card) {
      var id = card.dataset.critique;
      return !slot.querySelector("[name='cr-" + id + "']:checked") || !slot.querySelector("[name='ch-" + id + "']:checked");
    });
    if (!unrated.length) return null;
    focusCritique(unrated[0]);
    return form.dataset.msgRatings;
  }

  function focusCritique(card) {
    var details = card.closest("details");
    if (details) details.open = true;
    card.focus();
    card.scrollIntoView({ block: "nearest" });
    var slot = card.closest(".slot");
    slot.querySelectorAll(".span-mark.active").forEach(function (m) { m.classList.remove("active"); });
    slot.querySelectorAll(".span-mark").forEach(function (m) {
      if (m.dataset.critiques.split(" ").indexOf(card.dataset.critique) >= 0) m.classList.add("active");
    });
  }

  /* Keys: q / Shift+q move between critiques; inside one, v n u rate it and + - say if it helped. */
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing || typing(e.target)) return;
    var slot = currentSlot();
    if (!slot) return;
    var cards = Array.prototype.slice.call(slot.querySelectorAll("[data-critique]"));
    if (!cards.length) return;
    var card = e.target.closest && e.target.closest("[data-critique]");
    if (e.key === "q" || e.key === "Q") {
      var at = cards.indexOf(card);
      var next = e.key === "Q" ? (at <= 0 ? cards.length - 1 : at - 1) : (at + 1) % cards.length;
      focusCritique(cards[next]);
      e.preventDefault();
      e.stopPropagation();
      return;
    }
    if (!card) return;
    if (e.key === "Escape") {
      var heading = slot.querySelector("h2");
      if (heading) heading.focus({ preventScroll: true });
      e.preventDefault();
      e.stopPropagation();
      return;
    }
    var key = e.key === "=" ? "+" : e.key === "_" || e.key === "\u2212" ? "-" : e.key.toLowerCase();
    var radio = card.querySelector("input[data-critique-key='" + key + "']");
    if (radio) {
      radio.checked = true;
      radio.dispatchEvent(new Event("change", { bubbles: true }));
      e.preventDefault();
      e.stopPropagation();
    }
  }, true);

  /* Quote: the selection inside the candidate's response becomes the critique's span. */
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-quote]");
    if (!button) return;
    var panel = button.closest(".candidate");
    var box = button.closest(".my-critique");
    var status = box.querySelector("[data-quote-status]");
    var roots = panel.querySelectorAll(".panel-body [data-span-root]");
    var found = null;
    for (var i = 0; i < roots.length && !found; i++) {
      var span = window.AssaySpans.selectionSpan(roots[i]);
      if (span) found = { root: roots[i], span: span };
    }
    var field = box.querySelector("[data-span-field]");
    if (!found) {
      status.textContent = "Select some text of this response first, then press the button.";
      return;
    }
    var message = found.root.dataset.message;
    field.value = (message !== undefined ? message + ":" : "") + found.span[0] + "," + found.span[1];
    status.textContent = "Quoted: \u201c" + String(window.getSelection()).slice(0, 80) + "\u201d";
  });

  /* A rating given clears the "rate every critique" message (the check runs again on submit). */
  document.addEventListener("change", function (e) {
    var name = e.target.name || "";
    if (name.indexOf("cr-") !== 0 && name.indexOf("ch-") !== 0) return;
    var form = document.getElementById(e.target.getAttribute("form"));
    var box = form && form.querySelector("[data-error]");
    if (box && box.textContent === form.dataset.msgRatings) box.textContent = "";
  });

  window.AssayCritiques = { missing: missing };
})();
