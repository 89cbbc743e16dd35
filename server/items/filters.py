"""The data browser's filters, read from a query string (pure: no database, no HTTP).

An HTML form sends every field, empty when the admin chose "any"; each value is checked here and
refused with a sentence naming the field, so a hand-edited URL gets a 422 page, never a 500.
"""

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from server.errors import Invalid

MAX_QUERY = 200  # characters of the word search
PAGE_SIZE = 50

E = TypeVar("E", bound=enum.StrEnum)


class Status(enum.StrEnum):
    unjudged = "unjudged"
    partial = "partial"
    complete = "complete"
    paused = "paused"


class Verdict(enum.StrEnum):
    preference = "preference"
    tie = "tie"
    both_bad = "both_bad"
    ranking = "ranking"


STATUS_LABELS = {
    Status.unjudged: "Not judged yet",
    Status.partial: "Partly judged",
    Status.complete: "Complete",
    Status.paused: "Paused",
}
VERDICT_LABELS = {
    Verdict.preference: "A preference",
    Verdict.tie: "Tie",
    Verdict.both_bad: "Both bad",
    Verdict.ranking: "A ranking",
}


@dataclass(frozen=True, slots=True)
class ItemFilters:
    """Which items of a project to list; judgment filters (rater, verdict, rationale) hold for one judgment."""

    batch_id: uuid.UUID | None = None
    status: Status | None = None
    rater_id: uuid.UUID | None = None
    verdict: Verdict | None = None
    has_rationale: bool = False
    skipped: bool = False
    q: str = ""
    after: int | None = None  # keyset: the `seq` of the last item of the previous page

    @property
    def judgment_filtered(self) -> bool:
        return self.verdict is not None or self.has_rationale or (self.rater_id is not None and not self.skipped)

    def query(self, **changes: object) -> dict[str, str]:
        """These filters as query parameters (for links to the next page, the export page)."""
        values = {
            "batch": self.batch_id,
            "status": self.status,
            "rater": self.rater_id,
            "verdict": self.verdict,
            "rationale": "1" if self.has_rationale else None,
            "skipped": "1" if self.skipped else None,
            "q": self.q or None,
            "after": self.after,
        } | changes
        return {k: str(v) for k, v in values.items() if v is not None}


def _uuid(params: Mapping[str, str], key: str, label: str) -> uuid.UUID | None:
    value = params.get(key, "").strip()
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Invalid(f"{label} must be chosen from the list (got {value[:40]!r}).") from None


def _choice(params: Mapping[str, str], key: str, kind: type[E]) -> E | None:
    value = params.get(key, "").strip()
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(e.value for e in kind)
        raise Invalid(f"{key} must be one of {allowed} (got {value[:40]!r}).") from None


def _flag(params: Mapping[str, str], key: str) -> bool:
    value = params.get(key, "").strip().lower()
    if value in ("", "0", "false", "off"):
        return False
    if value in ("1", "true", "on", "yes"):
        return True
    raise Invalid(f"{key} must be 1 or empty (got {value[:40]!r}).")


def _after(params: Mapping[str, str]) -> int | None:
    value = params.get("after", "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise Invalid("after must be the position of an item, as in the link to the next page.")
    return int(value)


def parse(params: Mapping[str, str]) -> ItemFilters:
    """Filters from a query string; a bad value is refused with a sentence naming it."""
    q = params.get("q", "").strip()
    if len(q) > MAX_QUERY:
        raise Invalid(f"The search is {len(q):,} characters long; search for at most {MAX_QUERY} characters.")
    if "\x00" in q:
        raise Invalid("The search contains a NUL character; remove it.")
    return ItemFilters(
        batch_id=_uuid(params, "batch", "The batch"),
        status=_choice(params, "status", Status),
        rater_id=_uuid(params, "rater", "The rater"),
        verdict=_choice(params, "verdict", Verdict),
        has_rationale=_flag(params, "rationale"),
        skipped=_flag(params, "skipped"),
        q=q,
        after=_after(params),
    )
