/* Flaws on the rater page: mark a stretch of a response (mouse or keyboard), give it a severity and
 * a note; each flaw is a hidden `fl` field of the verdict form (a JSON object, as the API's
 * `flaws[i]`: candidate_id, span in code points, message for a chat response, severity, note),
 * listed under its response, removable until the verdict is sent, and highlighted in the response
 * with the CSS Custom Highlight API (no element is added to the text, so offsets stay exact).
 *
 * Keys (the page legend lists them): m marks the selected text, or, with nothing selected,
 * starts keyboard marking at the first word of response A: → / ← move to the next / previous
 * word, Shift+→ / Shift+← grow / shrink the marked stretch by a word at its end, ↓ / ↑ go to the
 * next / previous response (or chat message), Enter or m takes the stretch, Esc stops. Then the
 * severity menu has the focus: Tab to the note, Enter adds the flaw, Esc drops it.
 *
 * The admin item page uses the same file for one thing: "Use the selected text" fills the
 * plant-a-flaw form from a selection in a response. Loaded after spans.js. */
(function () {
  "use strict";

  var Spans = window.AssaySpans;
  var marking = null; // keyboard marking: {slot, roots, root, start, end} (UTF-16 offsets in root)

  function typing(target) {
    return target.closest && target.closest("textarea, select, input:not([type=radio]):not([type=checkbox])");
  }
  function currentSlot() { return document.querySelector("#queue > .slot:not([hidden])"); }
  function roots(slot) { return Array.prototype.slice.call(slot.querySelectorAll(".candidate .panel-body [data-span-root]")); }

  /* --- highlighting ---------------------------------------------------------------------------- */

  function redraw() {
    if (!window.CSS || !CSS.highlights || typeof Highlight === "undefined") return;
    var ranges = [];
    document.querySelectorAll("[data-flaw]").forEach(function (item) {
      var flaw = JSON.parse(item.querySelector("input[name=fl]").value);
      var panel = document.querySelector(".slot[data-assignment='" + item.closest(".slot").dataset.assignment +
        "'] .candidate[data-candidate='" + flaw.candidate_id + "']");
      if (!panel) return;
      var root = panel.querySelector(flaw.message !== undefined
        ? ".panel-body [data-span-root][data-message='" + flaw.message + "']" : ".panel-body [data-span-root]");
      var range = root && Spans.rangeOf(root, flaw.span[0], flaw.span[1]);
      if (range) ranges.push(range);
    });
    CSS.highlights.set("assay-flaw", new Highlight(...ranges));
  }

  /* --- the new-flaw form under a response -------------------------------------------------------- */

  function boxOf(root) { return root.closest(".candidate").querySelector("[data-flaws-of]"); }

  function openNew(root, span, quoteText) {
    var box = boxOf(root);
    if (!box) return;
    var form = box.querySelector("[data-flaw-new]");
    form._span = span;
    form._message = root.dataset.message;
    form.querySelector("[data-flaw-quote]").textContent = quoteText.length > 200 ? quoteText.slice(0, 200) + "\u2026" : quoteText;
    form.querySelector("[data-flaw-note]").value = "";
    form.querySelector("[data-flaw-severity]").value = "major";
    form.hidden = false;
    box.querySelector("[data-flaw-status]").textContent = "";
    form.querySelector("[data-flaw-severity]").focus();
  }

  function closeNew(form, focusBack) {
    form.hidden = true;
    form._span = null;
    if (focusBack) {
      var button = form.closest("[data-flaws-of]").querySelector("[data-mark-flaw]");
      if (button) button.focus();
    }
  }

  function addFlaw(form) {
    var box = form.closest("[data-flaws-of]");
    if (!form._span) return;
    var flaw = {
      candidate_id: box.dataset.flawsOf,
      span: form._span,
      severity: form.querySelector("[data-flaw-severity]").value,
      note: form.querySelector("[data-flaw-note]").value.trim()
    };
    if (form._message !== undefined) flaw.message = parseInt(form._message, 10);
    var list = box.querySelector("[data-flaw-list]");
    if (list.querySelectorAll("[data-flaw]").length >= parseInt(box.dataset.max || "50", 10)) {
      box.querySelector("[data-flaw-status]").textContent = box.dataset.msgTooMany;
      return;
    }
    var item = document.createElement("li");
    item.className = "flaw";
    item.setAttribute("data-flaw", "");
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = "fl";
    input.setAttribute("form", box.dataset.form);
    input.value = JSON.stringify(flaw);
    var severity = document.createElement("span");
    severity.className = "severity severity-" + flaw.severity;
    severity.textContent = flaw.severity;
    var quote = document.createElement("q");
    quote.className = "flaw-quote";
    quote.textContent = form.querySelector("[data-flaw-quote]").textContent;
    item.append(input, severity, " ", quote);
    if (flaw.note) {
      var note = document.createElement("span");
      note.className = "flaw-note";
      note.textContent = " \u2014 " + flaw.note;
      item.append(note);
    }
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "button button-small";
    remove.setAttribute("data-flaw-remove", "");
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", "Remove the flaw \u201c" + quote.textContent + "\u201d");
    item.append(" ", remove);
    list.append(item);
    box.querySelector("[data-flaw-status]").textContent = "Flaw added (" + list.children.length + " in this response).";
    closeNew(form, true);
    redraw();
  }

  /* The selection inside one of the slot's responses, as {root, span, text}, or null. */
  function selected(slot) {
    var all = roots(slot);
    for (var i = 0; i < all.length; i++) {
      var span = Spans.selectionSpan(all[i]);
      if (span) return { root: all[i], span: span, text: String(window.getSelection()) };
    }
    return null;
  }

  function markSelection(slot, status) {
    var found = selected(slot);
    if (!found) {
      if (status) status.textContent = "Select some text of the response first (with the mouse, or press m for the keyboard).";
      return false;
    }
    openNew(found.root, found.span, found.text);
    window.getSelection().removeAllRanges();
    return true;
  }

  /* --- keyboard marking ---------------------------------------------------------------------- */

  function words(root) {
    var out = [];
    var re = /\S+/g;
    var text = root.textContent;
    var m;
    while ((m = re.exec(text))) out.push([m.index, m.index + m[0].length]);
    return out;
  }

  function show() {
    var range = Spans.rangeAtUtf16(marking.root, marking.words[marking.first][0], marking.words[marking.last][1]);
    var selection = window.getSelection();
    selection.removeAllRanges();
    if (range) {
      selection.addRange(range);
      var node = range.startContainer.nodeType === Node.TEXT_NODE ? range.startContainer.parentElement : range.startContainer;
      if (node && node.scrollIntoView) node.scrollIntoView({ block: "nearest" });
    }
    var slot = marking.slot;
    var status = slot.querySelector("[data-marking-status]");
    if (status) {
      var label = marking.root.closest(".candidate").dataset.label;
      status.textContent = "Marking in response " + label + ": \u201c" + String(selection).slice(0, 80) + "\u201d";
    }
  }

  function startAt(slot, index) {
    var all = roots(slot).filter(function (r) { return words(r).length; });
    if (!all.length) return;
    var root = all[(index + all.length) % all.length];
    marking = { slot: slot, roots: all, root: root, words: words(root), first: 0, last: 0 };
    slot.classList.add("marking");
    show();
  }

  function stop() {
    if (!marking) return;
    var status = marking.slot.querySelector("[data-marking-status]");
    if (status) status.textContent = "";
    marking.slot.classList.remove("marking");
    marking = null;
  }

  function markingKey(e) {
    var m = marking;
    var n = m.words.length;
    if (e.key === "Escape") { window.getSelection().removeAllRanges(); stop(); return true; }
    if (e.key === "Enter" || e.key === "m" || e.key === "M") {
      var span = Spans.selectionSpan(m.root);
      var text = String(window.getSelection());
      var root = m.root;
      stop();
      if (span) { window.getSelection().removeAllRanges(); openNew(root, span, text); }
      return true;
    }
    if (e.key === "ArrowRight" && e.shiftKey) { m.last = Math.min(n - 1, m.last + 1); show(); return true; }
    if (e.key === "ArrowLeft" && e.shiftKey) { m.last = Math.max(m.first, m.last - 1); show(); return true; }
    if (e.key === "ArrowRight") { m.first = m.last = Math.min(n - 1, m.last + 1); show(); return true; }
    if (e.key === "ArrowLeft") { m.first = m.last = Math.max(0, m.first - 1); show(); return true; }
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      var at = m.roots.indexOf(m.root);
      startAt(m.slot, at + (e.key === "ArrowDown" ? 1 : -1));
      return true;
    }
    return false;
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    // Inside the new-flaw form: Enter adds it, Esc drops it.
    var form = e.target.closest && e.target.closest("[data-flaw-new]");
    if (form) {
      if (e.key === "Enter" && e.target.tagName !== "BUTTON") { e.preventDefault(); e.stopPropagation(); addFlaw(form); }
      else if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); closeNew(form, true); }
      return;
    }
    if (marking) {
      if (markingKey(e)) { e.preventDefault(); e.stopPropagation(); }
      return;
    }
    if (typing(e.target) || (e.key !== "m" && e.key !== "M")) return;
    var slot = currentSlot();
    if (!slot || !slot.querySelector("[data-flaws-of]")) return;
    e.preventDefault();
    e.stopPropagation();
    if (!markSelection(slot, null)) startAt(slot, 0);
  }, true);

  document.addEventListener("click", function (e) {
    var target = e.target.closest ? e.target : null;
    if (!target) return;
    var button = target.closest("[data-mark-flaw]");
    if (button) {
      stop();
      var box = button.closest("[data-flaws-of]");
      markSelection(button.closest(".slot"), box.querySelector("[data-flaw-status]"));
      return;
    }
    var add = target.closest("[data-flaw-add]");
    if (add) { addFlaw(add.closest("[data-flaw-new]")); return; }
    var cancel = target.closest("[data-flaw-cancel]");
    if (cancel) { closeNew(cancel.closest("[data-flaw-new]"), true); return; }
    var remove = target.closest("[data-flaw-remove]");
    if (remove) {
      var item = remove.closest("[data-flaw]");
      var owner = item.closest("[data-flaws-of]");
      item.remove();
      owner.querySelector("[data-flaw-status]").textContent = "Flaw removed.";
      var next = owner.querySelector("[data-mark-flaw]");
      if (next) next.focus();
      redraw();
      return;
    }
    var use = target.closest("[data-use-selection]");
    if (use) useSelection(use.closest("[data-plant-form]"));
  });

  /* --- the admin item page: plant a flaw where the selection is ------------------------------ */

  function useSelection(form) {
    var status = form.querySelector("[data-selection-status]");
    var bodies = document.querySelectorAll("[data-planted-in] [data-span-root]");
    for (var i = 0; i < bodies.length; i++) {
      var span = Spans.selectionSpan(bodies[i]);
      if (!span) continue;
      var panel = bodies[i].closest("[data-planted-in]");
      form.querySelector("[name=candidate]").value = panel.dataset.plantedIn;
      form.querySelector("[name=start]").value = span[0];
      form.querySelector("[name=end]").value = span[1];
      var message = bodies[i].dataset.message;
      form.querySelector("[name=message]").value = message !== undefined ? parseInt(message, 10) + 1 : "";
      status.textContent = "Response #" + panel.dataset.label + ", characters " + span[0] + "\u2013" + span[1] + ": \u201c" +
        String(window.getSelection()).slice(0, 80) + "\u201d";
      form.querySelector("[name=description]").focus();
      return;
    }
    status.textContent = "Select the flawed text in one of the responses first.";
  }

  document.addEventListener("DOMContentLoaded", redraw);
  document.body.addEventListener("htmx:afterSwap", redraw);
  document.body.addEventListener("htmx:afterSettle", redraw);
})();
