/* The rater page: keys, the instant swap to the prefetched item, ranking, heartbeat, drafts.
 *
 * The server renders every item; this script only shows and hides them. #queue holds the item
 * on screen and the next one (hidden, already leased). Submitting shows the next one at once and
 * lets htmx post the verdict; the answer is the item after it, appended hidden. If the post is
 * refused or never arrives, the submitted item comes back exactly as the rater left it (choice,
 * ranking, rationale) with the reason in its error box. No inline handlers: CSP allows 'self' only.
 */
(function () {
  "use strict";

  var queue = document.getElementById("queue");
  if (!queue) return;
  var revising = queue.hasAttribute("data-revise"); // the revision page (revise.js) rather than the queue
  var takeBackTo = null; // Backspace pressed while a verdict was on its way: go once it is stored
  var loading = document.querySelector("[data-loading]");
  var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  var SWAP_GUARD_MS = 400; // a double click or a bounced Enter must not judge the next item
  var lastSwap = -Infinity;
  var root = document.documentElement;
  var project = queue.dataset.project;

  /* Storage may be off (private modes, policies): everything below works without it. */
  function stored(area, key) { try { return area.getItem(key); } catch (err) { return null; } }
  function store(area, key, value) { try { area.setItem(key, value); } catch (err) { /* storage off */ } }

  /* A touch screen names no keys: CSS hides them (.touch), messages come in their touch words. */
  var touch = window.matchMedia("(hover: none) and (pointer: coarse)").matches;
  if (touch) root.classList.add("touch");
  function msg(el, name) {
    return (touch && el.dataset["msg" + name + "Touch"]) || el.dataset["msg" + name];
  }

  function slots() { return Array.prototype.slice.call(queue.querySelectorAll(":scope > .slot")); }
  function current() { return queue.querySelector(":scope > .slot:not([hidden])"); }
  function waiting() {
    return slots().filter(function (s) { return s.hidden && !s.hasAttribute("data-pending"); });
  }
  function verdictForm(slot) { return slot.querySelector("form.verdict"); }

  /* Time actually spent on an item: counted only while it is on screen and the tab is visible. */
  function startClock(slot) {
    if (!document.hidden) slot._shownAt = performance.now();
  }
  function stopClock(slot) {
    if (slot._shownAt) {
      slot._activeMs = (slot._activeMs || 0) + (performance.now() - slot._shownAt);
      slot._shownAt = 0;
    }
  }
  document.addEventListener("visibilitychange", function () {
    var slot = current();
    if (!slot) return;
    if (document.hidden) { stopClock(slot); return; }
    startClock(slot);
    heartbeat(); // timers are throttled in background tabs: renew as soon as the rater is back
  });

  function show(slot) {
    slot.hidden = false;
    if (loading) loading.hidden = true;
    startClock(slot);
    restoreDraft(slot);
    var heading = slot.querySelector("h2");
    if (heading) heading.focus({ preventScroll: true });
    // The last turns of the conversation are what the responses answer: show the end of the prompt.
    var prompt = slot.querySelector("[data-scroll=prompt]");
    if (prompt) prompt.scrollTop = prompt.scrollHeight;
    window.scrollTo(0, Math.min(window.scrollY, queue.offsetTop));
  }

  function showNext() {
    var next = waiting()[0];
    if (next) show(next);
    else if (loading) loading.hidden = false;
  }

  function setError(slot, text) {
    var box = slot.querySelector("[data-error]");
    if (box) box.textContent = text || "";
  }

  /* What is missing before a verdict can be sent; the words come from the server (data-msg-*). */
  function problem(form) {
    var picked = form.querySelector("input[name=verdict]:checked");
    if (form.dataset.mode === "answer") {
      /* A subtask: a button (check, short rating) or its box (number, text) answers it. */
      var box = form.querySelector("[data-answer-box]");
      if (!picked && !(box && box.value.trim())) return msg(form, "Answer");
    } else if (form.dataset.mode === "ranking") {
      if (!picked) {
        if (!form.querySelector("input[name=ranking]").value) return msg(form, "Ranking");
        var strengths = form.querySelectorAll("input[name=strength]");
        if (strengths.length && !form.querySelector("input[name=strength]:checked")) return form.dataset.msgStrength;
      }
    } else if (!picked) {
      return msg(form, "Verdict");
    }
    var rationale = form.querySelector("textarea[name=rationale]");
    if (rationale && rationale.required && !rationale.value.trim()) return form.dataset.msgRationale;
    if (window.AssayCritiques) return window.AssayCritiques.missing(form); // critiques.js
    return null;
  }

  function send(slot, action) {
    if (!slot || slot.dataset.kind !== "item" || slot.hasAttribute("data-pending")) return;
    if (revising && action !== "judge") return;
    var form = verdictForm(slot);
    var target = action === "skip" ? slot.querySelector("form.skip-form") : form;
    var missing = action === "judge" ? problem(form) : null;
    // The second click of a double click (or a bounced key) lands on the item just shown:
    // nothing has been chosen there yet, so it is dropped without a word.
    if (performance.now() - lastSwap < SWAP_GUARD_MS && (missing || action === "skip")) return;
    if (missing) {
      setError(slot, missing);
      if (missing === form.dataset.msgRationale) form.querySelector("textarea[name=rationale]").focus();
      return;
    }
    setError(slot, "");
    stopClock(slot);
    form.querySelector("input[name=active_ms]").value = String(Math.round(slot._activeMs || 0));
    if (revising) { // the revision page: a plain post; the answer is the page we came from
      slot.setAttribute("data-pending", action);
      slot.querySelector("[data-submit]").disabled = true;
      form.submit();
      return;
    }
    // Every lease the page still shows, so the server leases a new one after them.
    var holding = slots().filter(function (s) { return s !== slot && s.dataset.assignment; })
      .map(function (s) { return s.dataset.assignment; }).join(",");
    target.querySelector("input[name=ahead]").value = holding;
    if (action === "skip") {
      // The optional reason from the bar goes with the skip.
      target.querySelector("input[name=reason_code]").value = slot.querySelector("[data-skip-code]").value;
      target.querySelector("input[name=reason]").value = slot.querySelector("[data-skip-text]").value;
    }
    slot.setAttribute("data-pending", action);
    slot.querySelector("[data-submit]").disabled = true;
    slot.hidden = true;
    lastSwap = performance.now();
    showNext();
    htmx.trigger(target, action === "skip" ? "assay-skip" : "assay-judge");
  }

  /* The answer to a submit or skip: drop the sent item, or bring it back with the reason. */
  document.body.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    var slot = form && form.closest && form.closest(".slot");
    if (!slot || !slot.hasAttribute("data-pending")) return;
    var action = slot.getAttribute("data-pending");
    slot.removeAttribute("data-pending");
    var back = takeBackTo;
    takeBackTo = null;
    if (event.detail.successful) {
      clearDraft(slot);
      slot.remove();
      if (action === "judge") { bumpCounter(); shift.judged += 1; renderShift(); }
      if (back) { window.location.assign(back); return; }
      if (!current()) showNext();
      return;
    }
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status === 0) setError(slot, msg(queue, "Network"));
    else if (status >= 500) setError(slot, msg(queue, "Server"));
    var shown = current();
    if (shown && shown !== slot) { stopClock(shown); shown.hidden = true; }
    // Put it back first in line, where it was.
    queue.insertBefore(slot, queue.firstElementChild);
    slot.querySelector("[data-submit]").disabled = false;
    show(slot);
  });

  /* The queue is asked for by POST once the page has loaded; if that fails, say so. */
  document.body.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-queue-loader") || event.detail.successful) return;
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (loading) loading.textContent = status === 0 ? queue.dataset.msgLoadNetwork : queue.dataset.msgLoadServer;
  });

  /* New items arrive hidden at the end; keep one copy of each, and one "done" at most. */
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target !== queue) return;
    var seen = {};
    slots().forEach(function (s) {
      var key = s.dataset.assignment || s.dataset.kind;
      if (seen[key]) s.remove(); else seen[key] = true;
    });
    // An item after a "done" is new work that arrived meanwhile: it goes first.
    slots().forEach(function (s) {
      if (s.dataset.kind === "item" && s.hidden && !s.hasAttribute("data-pending")) {
        var before = s.previousElementSibling;
        if (before && before.dataset.kind !== "item" && before.hidden) queue.insertBefore(s, before);
      }
    });
    if (!current() && !slots().some(function (s) { return s.hasAttribute("data-pending"); })) showNext();
  });

  function bumpCounter() {
    var counter = document.querySelector("[data-judged-today]");
    if (counter) counter.textContent = String(parseInt(counter.textContent, 10) + 1);
  }

  /* Ranking: letters fill the order best-first; drag or the arrow buttons reorder. */
  function rankItems(form) { return Array.prototype.slice.call(form.querySelectorAll("[data-rank-list] > li")); }
  function renderRanking(form) {
    var items = rankItems(form);
    var fixed = form._ranked || 0;
    // With every row but one placed, the last one is implied: the ranking is complete.
    var complete = fixed >= items.length - 1;
    var placed = complete ? items.length : fixed;
    items.forEach(function (li, i) {
      li.classList.toggle("ranked", i < placed);
      li.querySelector(".rank-pos").textContent = i < placed ? String(i + 1) + "." : "";
    });
    form.querySelector("input[name=ranking]").value = complete
      ? items.map(function (li) { return li.dataset.candidate; }).join(",") : "";
    var status = form.querySelector("[data-rank-status]");
    status.textContent = complete
      ? "Your ranking: " + items.map(function (li) { return li.dataset.label; }).join(" > ")
      : fixed === 0 ? (touch ? "Not ranked yet: drag the responses or use the arrows, best first."
                             : "Not ranked yet: press the letters in order, best first.")
      : "Ranked " + fixed + " of " + items.length + (touch ? ": place the next one." : ": press the next letter.");
    if (complete || fixed) {
      form.querySelectorAll("input[name=verdict]:checked").forEach(function (r) { r.checked = false; });
    }
  }
  function rankByKey(form, label) {
    var items = rankItems(form);
    var li = items.filter(function (x) { return x.dataset.label.toLowerCase() === label; })[0];
    if (!li) return false;
    var fixed = form._ranked || 0;
    var position = items.indexOf(li);
    if (fixed === items.length - 1 && position === fixed) {
      form._ranked = items.length; // the implied last one, typed too: the order stays as typed
      renderRanking(form);
      return true;
    }
    if (fixed >= items.length - 1) fixed = 0; // a finished ranking: a letter starts a new one
    if (position < fixed) return true;
    li.parentNode.insertBefore(li, items[fixed]);
    form._ranked = fixed + 1;
    renderRanking(form);
    return true;
  }
  function move(form, li, delta) {
    var items = rankItems(form);
    var to = items.indexOf(li) + delta;
    if (to < 0 || to >= items.length) return;
    if (delta < 0) li.parentNode.insertBefore(li, items[to]);
    else li.parentNode.insertBefore(li, items[to].nextSibling);
    form._ranked = items.length;
    renderRanking(form);
  }
  var dragged = null;
  queue.addEventListener("dragstart", function (e) {
    var li = e.target.closest && e.target.closest("[data-rank-list] > li");
    if (!li) return;
    dragged = li;
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", li.dataset.label);
  });
  queue.addEventListener("dragover", function (e) {
    if (dragged && e.target.closest && e.target.closest("[data-rank-list]")) e.preventDefault();
  });
  queue.addEventListener("drop", function (e) {
    var li = e.target.closest && e.target.closest("[data-rank-list] > li");
    if (!dragged || !li || li === dragged) return;
    e.preventDefault();
    var rect = li.getBoundingClientRect();
    var after = e.clientY > rect.top + rect.height / 2;
    li.parentNode.insertBefore(dragged, after ? li.nextSibling : li);
    var form = li.closest("form");
    form._ranked = rankItems(form).length;
    renderRanking(form);
    dragged = null;
  });
  queue.addEventListener("dragend", function () { dragged = null; });

  queue.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-move]");
    if (button) move(button.closest("form"), button.closest("li"), parseInt(button.dataset.move, 10));
  });
  queue.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches("[data-skip-code]")) {
      var words = t.closest(".slot").querySelector("[data-skip-text]");
      words.hidden = !t.value;
      return;
    }
    if (t.name === "verdict" && t.checked) setError(t.closest(".slot"), "");
    if (t.name === "verdict" && t.checked && t.closest("form").dataset.mode === "ranking") {
      t.closest("form")._ranked = 0; // tie / all bad replaces the ranking
      renderRanking(t.closest("form"));
      t.checked = true;
    }
  });

  /* Forms submit through send(): a click, Enter on the button, or the plain form without JS. */
  queue.addEventListener("submit", function (e) {
    var form = e.target;
    e.preventDefault();
    send(form.closest(".slot"), form.classList.contains("skip-form") ? "skip" : "judge");
  });

  function typingIn(target) {
    return target.closest && target.closest(
      "textarea, select, [contenteditable=''], [contenteditable=true], input:not([type=radio]):not([type=checkbox])"
    );
  }

  /* Take it back: Backspace or Undo opens the last verdict for revision (the revision page's
   * Backspace goes back). A verdict still on its way is stored first, so "last" is that one. */
  function takeBack(url) {
    if (!revising && slots().some(function (s) { return s.getAttribute("data-pending") === "judge"; })) {
      takeBackTo = url;
      return;
    }
    window.location.assign(url);
  }
  document.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest("[data-undo]");
    if (!link) return;
    e.preventDefault();
    takeBack(link.href);
  });

  /* Feedback after an item with a known answer: the next item waits until it has been read. */
  function dismissFeedback() {
    var box = document.querySelector("[data-feedback]");
    if (!box) return false;
    box.remove();
    var slot = current();
    if (slot && slot.querySelector("h2")) slot.querySelector("h2").focus({ preventScroll: true });
    return true;
  }
  document.addEventListener("click", function (e) {
    if (e.target.closest && e.target.closest("[data-feedback-dismiss]")) dismissFeedback();
  });

  document.addEventListener("keydown", function (e) {
    if ((e.key === "Enter" || e.key === "Escape") && document.querySelector("[data-feedback]")) {
      e.preventDefault();
      dismissFeedback();
      return;
    }
    if (e.key === "Backspace" && !e.isComposing && !e.ctrlKey && !e.metaKey && !e.altKey && !typingIn(e.target)) {
      var link = document.querySelector(revising ? "[data-back]" : "[data-undo]");
      if (link) { e.preventDefault(); takeBack(link.href); }
      return;
    }
    var slot = current();
    if (!slot || slot.dataset.kind !== "item" || e.isComposing) return;
    var form = verdictForm(slot);
    if (typingIn(e.target)) {
      if (e.key === "Escape") { e.target.blur(); slot.querySelector("h2").focus({ preventScroll: true }); }
      else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); send(slot, "judge"); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var tag = e.target.tagName;
    if (e.key === "Enter") {
      if (tag === "A" || tag === "SUMMARY" || (tag === "BUTTON" && !e.target.hasAttribute("data-submit"))) return;
      e.preventDefault();
      send(slot, "judge");
      return;
    }
    var key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (key === "s") { e.preventDefault(); send(slot, "skip"); return; }
    if (key === "i") {
      if (instructions) instructions.open = !instructions.open;
      e.preventDefault();
      return;
    }
    if (key === "ArrowDown" || key === "ArrowUp") {
      scrollResponse(slot, e.shiftKey ? "B" : "A", key === "ArrowDown" ? 1 : -1);
      e.preventDefault();
      return;
    }
    if (form.dataset.mode === "ranking") {
      if (key === "Escape") { form._ranked = 0; renderRanking(form); e.preventDefault(); return; }
      if (/^[a-z]$/.test(key) && key !== "t" && key !== "x" && rankByKey(form, key)) { e.preventDefault(); return; }
    }
    if (key === "a" && form.dataset.mode === "answer" && form.querySelector("[data-answer-box]")) {
      e.preventDefault();
      form.querySelector("[data-answer-box]").focus();
      return;
    }
    if (key === "r" && form.querySelector("textarea[name=rationale]")) {
      e.preventDefault();
      form.querySelector("textarea[name=rationale]").focus();
      return;
    }
    var radios = form.querySelectorAll("input[type=radio][data-keys]");
    for (var i = 0; i < radios.length; i++) {
      if (radios[i].dataset.keys.split(" ").indexOf(key) >= 0) {
        radios[i].checked = true;
        radios[i].dispatchEvent(new Event("change", { bubbles: true }));
        e.preventDefault();
        return;
      }
    }
  });

  /* Drafts: the rationale survives a reload or a new login in this tab. */
  function draftKey(slot) { return "assay:rationale:" + slot.dataset.assignment; }
  function restoreDraft(slot) {
    var box = slot.querySelector("textarea[data-draft]");
    if (!box || box.value) return;
    try { box.value = sessionStorage.getItem(draftKey(slot)) || ""; } catch (err) { /* storage off */ }
  }
  function clearDraft(slot) {
    try { sessionStorage.removeItem(draftKey(slot)); } catch (err) { /* storage off */ }
  }
  queue.addEventListener("input", function (e) {
    var slot = e.target.closest(".slot");
    if (!e.target.matches("textarea[data-draft]") || !slot) return;
    try { sessionStorage.setItem(draftKey(slot), e.target.value); } catch (err) { /* storage off */ }
  });

  /* Heartbeat: keep the leases of the items on the page alive while it is open (JSON API). */
  function heartbeat() {
    slots().forEach(function (slot) {
      if (revising || !slot.dataset.assignment || slot.hasAttribute("data-pending")) return;
      fetch("/api/v1/assignments/" + slot.dataset.assignment + "/heartbeat", {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": headers["X-CSRF-Token"] || "" }
      }).then(function (response) {
        if (response.status !== 409) return;
        return response.json().then(function (body) {
          var notice = slot.querySelector("[data-notice]");
          if (notice) notice.innerHTML = "";
          var p = document.createElement("p");
          p.className = "notice";
          p.textContent = body.detail;
          if (notice) notice.appendChild(p);
        });
      }).catch(function () { /* offline: the next beat tries again */ });
    });
  }
  setInterval(heartbeat, parseInt(queue.dataset.heartbeatMs, 10) || 60000);

  /* Scroll keys: a response scrolls in its own panel on a wide screen; on a phone (one page that
     scrolls) the key brings the response into view, then pages through it. */
  function scrollResponse(slot, label, direction) {
    var body = slot.querySelector(".candidate .panel-body[data-scroll=" + label + "]");
    if (!body) return;
    if (body.scrollHeight > body.clientHeight + 1 && getComputedStyle(body).overflowY !== "visible") {
      body.scrollBy({ top: direction * Math.max(48, body.clientHeight * 0.8), behavior: "instant" });
      return;
    }
    var rect = body.getBoundingClientRect();
    var offscreen = rect.top < 0 || rect.top > window.innerHeight * 0.6;
    if (direction > 0 && offscreen && rect.bottom > window.innerHeight) window.scrollBy(0, rect.top - 8);
    else window.scrollBy(0, direction * window.innerHeight * 0.8);
  }

  /* Instructions: open or closed as the rater left them in this project; on a first visit open
     where they are a side panel (wide screens) if there are any, one line otherwise. */
  var instructions = document.querySelector("[data-instructions]");
  if (instructions) {
    var instructionsKey = "assay:instructions:" + project;
    var was = stored(localStorage, instructionsKey);
    var open = was ? was === "open"
      : !instructions.hasAttribute("data-empty") && window.matchMedia("(min-width: 1100px)").matches;
    if (open !== instructions.open) {
      instructions.dataset.auto = String(open); // the toggle event this fires is not the rater's choice
      instructions.open = open;
    }
    instructions.addEventListener("toggle", function () {
      if (instructions.dataset.auto === String(instructions.open)) { delete instructions.dataset.auto; return; }
      delete instructions.dataset.auto;
      store(localStorage, instructionsKey, instructions.open ? "open" : "closed");
    });
  }

  /* The shift, in this tab: judged this session, time on task (visible tab only), and a gentle
     break reminder after the project's interval. A tab hidden for 5 minutes counts as a break. */
  var shiftBox = document.querySelector("[data-shift]");
  var shiftKey = "assay:shift:" + project;
  var BREAK_AWAY_MS = 5 * 60 * 1000;
  var shift = { judged: 0, activeMs: 0, sinceBreakMs: 0 };
  try { Object.assign(shift, JSON.parse(stored(sessionStorage, shiftKey) || "{}")); } catch (err) { /* a bad value: start over */ }
  var breakMs = (parseInt(shiftBox ? shiftBox.dataset.breakMinutes : "0", 10) || 0) * 60000;
  var reminder = document.querySelector("[data-break]");
  var lastTick = performance.now();
  var hiddenAt = 0;
  function duration(ms) {
    var minutes = Math.floor(ms / 60000);
    if (minutes < 60) return minutes + " min";
    var rest = minutes % 60;
    return Math.floor(minutes / 60) + " h " + (rest < 10 ? "0" : "") + rest + " min";
  }
  function renderShift() {
    if (!shiftBox) return;
    shiftBox.querySelector("[data-judged-session]").textContent = String(shift.judged);
    shiftBox.querySelector("[data-time-on-task]").textContent = duration(shift.activeMs);
    if (reminder && breakMs > 0 && shift.sinceBreakMs >= breakMs && reminder.hidden) {
      reminder.querySelector("[data-break-time]").textContent = duration(shift.sinceBreakMs);
      reminder.hidden = false;
    }
    store(sessionStorage, shiftKey, JSON.stringify(shift));
  }
  function tick() {
    var now = performance.now();
    var elapsed = now - lastTick;
    lastTick = now;
    // Only while the tab is visible; a long gap is a throttled timer or a sleeping machine, not work.
    if (!document.hidden && elapsed > 0 && elapsed < 60000) {
      shift.activeMs += elapsed;
      shift.sinceBreakMs += elapsed;
    }
    renderShift();
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { tick(); hiddenAt = performance.now(); return; }
    if (hiddenAt && performance.now() - hiddenAt >= BREAK_AWAY_MS) shift.sinceBreakMs = 0;
    lastTick = performance.now();
  });
  if (reminder) {
    reminder.querySelector("[data-break-dismiss]").addEventListener("click", function () {
      shift.sinceBreakMs = 0;
      reminder.hidden = true;
      renderShift();
    });
  }
  setInterval(tick, 1000);
  renderShift();

  /* Display: text size and theme, remembered in this browser (theme.js applies them early). */
  document.addEventListener("click", function (e) {
    var sizer = e.target.closest && e.target.closest("[data-text-step]");
    if (sizer) {
      var size = parseInt(root.getAttribute("data-text-size") || "0", 10) + parseInt(sizer.dataset.textStep, 10);
      size = Math.max(-1, Math.min(3, size));
      root.setAttribute("data-text-size", String(size));
      store(localStorage, "assay:text-size", String(size));
      return;
    }
    var themer = e.target.closest && e.target.closest("[data-theme-toggle]");
    if (themer) {
      var dark = root.getAttribute("data-theme") !== "dark";
      root.setAttribute("data-theme", dark ? "dark" : "light");
      store(localStorage, "assay:theme", dark ? "dark" : "light");
      themer.setAttribute("aria-pressed", String(dark));
    }
  });
  var themeButton = document.querySelector("[data-theme-toggle]");
  if (themeButton) themeButton.setAttribute("aria-pressed", String(root.getAttribute("data-theme") === "dark"));

  var first = current();
  if (first) { startClock(first); restoreDraft(first); }
  if (revising) queue.querySelectorAll("form.verdict").forEach(function (f) { if (f._ranked) renderRanking(f); });
})();
