"""Print the before/after table of bench/fold_compare.sh from the two reports of the above-the-fold test."""

import json
import sys
from pathlib import Path
from typing import Any


def _lines(candidate: dict[str, Any]) -> str:
    return f"{candidate['leading']} of {candidate['lines']}"


def table(before: dict[str, Any], after: dict[str, Any], base: str, head: str) -> str:
    first_before, first_after = before["results"][0], after["results"][0]
    rows = [
        ("", f"before ({base})", f"after ({head})"),
        ("---", "---", "---"),
    ]
    for i, label in enumerate(("A", "B")):
        rows.append(
            (
                f"first HH item: lines of response {label} readable without scrolling",
                _lines(first_before["candidates"][i]),
                _lines(first_after["candidates"][i]),
            )
        )
    rows.append(
        (
            "first HH item: prompt turns on screen (folded)",
            f"{first_before['prompt_turns_shown']} ({first_before['prompt_turns_folded']})",
            f"{first_after['prompt_turns_shown']} ({first_after['prompt_turns_folded']})",
        )
    )

    rows.append(
        (
            f"first {after['items']} HH items: both responses show their first 5 lines",
            f"{before['passed']} of {before['items']}",
            f"{after['passed']} of {after['items']}",
        )
    )

    def swap(report: dict[str, Any]) -> str:
        times = sorted(s["ms"] for s in report.get("swaps", []))
        if not times:
            return "not measured"
        return f"median {times[len(times) // 2]:.1f} ms, max {times[-1]:.1f} ms"

    rows.append(("Enter to the next item on screen (in the page, 100 swaps)", swap(before), swap(after)))
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


if __name__ == "__main__":
    before_path, after_path, base, head = sys.argv[1:5]
    print("1280x800, first visit (nothing stored in the browser), instructions of ten lines, HH-RLHF sample")
    print(table(json.loads(Path(before_path).read_text()), json.loads(Path(after_path).read_text()), base, head))
