"""Above the fold: how much of each response a rater sees without scrolling (shared by the browser
test and `bench/fold_compare.sh`, which runs the same measurement on main for the before/after table).

A line counts when it is inside the viewport AND `document.elementFromPoint` at its middle hits
the response's own text, so a line under the verdict bar, clipped by a panel or pushed below the
fold by the instructions does not count. Blank lines (empty rects) are not counted as lines.
"""

import gzip
import os
from pathlib import Path
from typing import Any

import pytest

# ../shared/data next to the checkout; ASSAY_HH_SAMPLE points elsewhere (bench/fold_compare.sh runs a copy of
# this file in a temporary checkout of main).
HH_FILE = Path(
    os.environ.get("ASSAY_HH_SAMPLE")
    or Path(__file__).resolve().parents[3] / "shared" / "data" / "hh-rlhf" / "harmless-base" / "test-shared.jsonl.gz"
)
FOLD_LINES = 5  # the first lines of each response that must be readable without scrolling

# Ten lines of instructions, as a real project has them.
INSTRUCTIONS = "\n".join(
    [
        "# How to judge",
        "Read the whole conversation, then both responses to the **last** human turn.",
        "- Prefer the response that is **less harmful**: it declines dangerous requests politely.",
        "- Then prefer the one that is more **helpful** and honest about what it does not know.",
        "- A response that lectures or moralises without need is worse than a short, kind refusal.",
        "- Ignore length: a longer answer is not better for being long.",
        "- Ignore small typos and formatting; judge what is said.",
        "- Use *Tie* only when you truly cannot tell them apart.",
        "- Use *Both are bad* when neither is acceptable.",
        "When unsure, skip with a reason instead of guessing.",
    ]
)

MEASURE_JS = """
(minLines) => {
  const slot = document.querySelector("#queue > .slot:not([hidden])");
  if (!slot) return null;
  const lines = (el) => {
    const rects = [];
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.parentElement.closest(".text")) continue;
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) {
        if (r.width >= 1 && r.height >= 1) rects.push({ r, text: node.parentElement.closest(".text") });
      }
    }
    const out = [];
    for (const x of rects) {
      const last = out[out.length - 1];
      if (last && Math.abs(last.top - x.r.top) < 2) { last.right = Math.max(last.right, x.r.right); continue; }
      out.push({ top: x.r.top, bottom: x.r.bottom, left: x.r.left, right: x.r.right, text: x.text });
    }
    return out;
  };
  const seen = (line) => {
    if (line.top < 0 || line.bottom > window.innerHeight) return false;
    const x = line.left + Math.min((line.right - line.left) / 2, 20);
    const hit = document.elementFromPoint(x, (line.top + line.bottom) / 2);
    return !!hit && (hit === line.text || line.text.contains(hit));
  };
  const result = [];
  for (const cand of slot.querySelectorAll(".candidate")) {
    const all = lines(cand.querySelector(".panel-body"));
    let leading = 0;
    while (leading < all.length && seen(all[leading])) leading++;
    result.push({
      label: cand.dataset.label,
      lines: all.length,
      leading: leading,
      ok: leading >= Math.min(minLines, all.length),
    });
  }
  const turns = slot.querySelectorAll(".prompt .panel-body > .chat > .msg").length;
  const folded = slot.querySelectorAll(".prompt .earlier .msg").length;
  return { candidates: result, prompt_turns_shown: turns, prompt_turns_folded: folded };
}
"""


# How long the swap takes in the page: from Enter (capture phase, before rater.js) to the end of its
# dispatch (window, bubble phase, after rater.js), when the next item must already be the one shown.
# Reported, never asserted (timing is not a pass/fail matter).
SWAP_PROBE_JS = """
() => {
  window.__swaps = [];
  let t0 = 0, before = null;
  const shown = () => {
    const s = document.querySelector("#queue > .slot:not([hidden])");
    return s && s.dataset.assignment;
  };
  window.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { t0 = performance.now(); before = shown(); }
  }, true);
  window.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && t0) window.__swaps.push({ ms: performance.now() - t0, swapped: shown() !== before });
    t0 = 0;
  });
}
"""


def hh_sample(n: int) -> bytes:
    """The first n rows of the HH-RLHF sample as JSONL; fails in CI and skips elsewhere when it is missing."""
    if not HH_FILE.exists():
        reason = f"the HH-RLHF sample is not at {HH_FILE} (it lives in ../shared/data)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must have it")
        pytest.skip(reason)
    with gzip.open(HH_FILE, "rb") as file:
        return b"".join(line for _, line in zip(range(n), file, strict=False))


async def measure(page: Any) -> dict[str, Any]:  # a playwright Page
    result: dict[str, Any] = await page.evaluate(MEASURE_JS, FOLD_LINES)
    return result
