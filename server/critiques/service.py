"""Critiques of candidates: added by the import, by a model over the API, or by raters with their
verdicts; shown to raters only as assistance (critiques/assistance.py) and rated by them.

Ratings and rater-written critiques are part of a judgment: `check` validates them with the
verdict, `store` writes them, and a revision replaces them (`store(..., replace=True)`). A revision
keeps the rows of the rater's critiques it sends unchanged, so later raters who were shown one can
still rate it; a critique its author takes back is gone, and a rating of it sent afterwards (by a
page that showed it) is left out rather than refused.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.critiques import assistance
from server.critiques.schemas import (
    MAX_CRITIQUES_PER_ITEM,
    CritiqueCreate,
    CritiqueRatingCreate,
    CritiqueView,
    FlawCreate,
    RaterCritiqueCreate,
)
from server.errors import Invalid
from server.labeling.spans import Span, SpanError, parse_span
from server.models import (
    Assignment,
    Candidate,
    Critique,
    CritiqueRating,
    CritiqueRatings,
    Flaw,
    Item,
    Judgment,
    Project,
    User,
)

RATER_AUTHOR = "rater"  # how a rater-written critique's author is shown to other raters
RATINGS_REQUIRED = (
    "This project asks you to rate every critique shown: say for each whether it is valid, invalid or "
    "unsure, and whether it helped ({missing} not rated yet)."
)
NOT_SHOWN = "critique_ratings[{index}] rates critique {id}, which this assignment did not show you."
RATED_TWICE = "critique_ratings[{index}] rates critique {id} again; rate each critique once."
NOT_A_CANDIDATE = "{field}.candidate_id {id} is not one of this item's candidates."
TOO_MANY = (
    "Item {item} has {have} critiques; with {adding} more it would pass the limit of {limit} per item. "
    "Nothing was added."
)


def author_of(critique: Critique) -> str:
    if critique.author_model is not None:
        return critique.author_model
    return str(critique.author_id) if critique.author_id is not None else RATER_AUTHOR


def span_of(critique: Critique) -> list[int] | None:
    return None if critique.span_start is None else [critique.span_start, int(critique.span_end or 0)]


def view(critique: Critique) -> CritiqueView:
    """A critique as raters see it: a rater author is anonymous."""
    return CritiqueView(
        id=critique.id,
        candidate_id=critique.candidate_id,
        text=critique.text,
        author=critique.author_model or RATER_AUTHOR,
        span=span_of(critique),
        message=critique.span_message,
        severity=critique.severity,
    )


def read(critique: Critique) -> dict[str, Any]:
    return {
        "id": critique.id,
        "item_id": critique.item_id,
        "candidate_id": critique.candidate_id,
        "text": critique.text,
        "author": author_of(critique),
        "span": span_of(critique),
        "message": critique.span_message,
        "severity": critique.severity,
        "created_at": critique.created_at,
    }


def _span(candidate: Candidate, span: list[int] | None, message: int | None, field: str) -> Span | None:
    if span is None:
        if message is not None:
            raise Invalid(f"{field}.message goes with a span; send span too, or leave message out.")
        return None
    try:
        return parse_span(span, message, text=candidate.text, messages=candidate.messages, field=f"{field}.span")
    except SpanError as exc:
        raise Invalid(exc.message.replace("message must", f"{field}.message must", 1)) from None


def _row(candidate: Candidate, span: Span | None, **values: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "item_id": candidate.item_id,
        "candidate_id": candidate.id,
        "span_message": None if span is None else span.message,
        "span_start": None if span is None else span.start,
        "span_end": None if span is None else span.end,
        **values,
    }


async def shown(session: AsyncSession, assignment: Assignment) -> list[Critique]:
    """The critiques an assisted assignment shows, in their order; none when unassisted."""
    ids = assistance.shown_ids(assignment)
    if not ids:
        return []
    return list(
        await session.scalars(
            select(Critique).where(Critique.id.in_([uuid.UUID(i) for i in ids])).order_by(Critique.seq)
        )
    )


# --- posted by a model (the API) ---------------------------------------------------------------


async def add(session: AsyncSession, *, item: Item, data: Sequence[CritiqueCreate]) -> list[Critique]:
    """Add critiques to an item's candidates, all or none.

    The item row is locked (FOR NO KEY UPDATE: it is the last lock of the order, and this path takes
    no other) so that two posts at once cannot pass the per-item limit together.
    """
    await session.execute(select(Item.id).where(Item.id == item.id).with_for_update(key_share=True))
    candidates = {c.id: c for c in await session.scalars(select(Candidate).where(Candidate.item_id == item.id))}
    have = await session.scalar(select(func.count()).where(Critique.item_id == item.id)) or 0
    if have + len(data) > MAX_CRITIQUES_PER_ITEM:
        raise Invalid(TOO_MANY.format(item=item.id, have=have, adding=len(data), limit=MAX_CRITIQUES_PER_ITEM))
    rows = []
    for index, critique in enumerate(data):
        where = f"critiques[{index}]"
        candidate = candidates.get(critique.candidate_id)
        if candidate is None:
            raise Invalid(NOT_A_CANDIDATE.format(field=where, id=critique.candidate_id))
        span = _span(candidate, critique.span, critique.message, where)
        rows.append(
            _row(
                candidate,
                span,
                project_id=item.project_id,
                text=critique.text,
                author_model=critique.author,
                severity=critique.severity,
            )
        )
    await session.execute(insert(Critique), rows)
    ids = [r["id"] for r in rows]
    return list(await session.scalars(select(Critique).where(Critique.id.in_(ids)).order_by(Critique.seq)))


# --- with a judgment -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Extras:
    """What a judgment brings besides its verdict, checked: ratings, rater-written critiques and
    the flaws the rater marked."""

    ratings: list[dict[str, Any]] = field(default_factory=list)
    critiques: list[dict[str, Any]] = field(default_factory=list)
    flaws: list[dict[str, Any]] = field(default_factory=list)

    def key(self) -> tuple[Any, ...]:
        """What makes two sends the same (to tell a retry from a different verdict)."""
        ratings = sorted((str(r["critique_id"]), r["verdict"], r["helpful"]) for r in self.ratings)
        critiques = sorted(
            (str(c["candidate_id"]), c["text"], c["span_message"], c["span_start"], c["span_end"], c["severity"])
            for c in self.critiques
        )
        flaws = sorted(
            (
                str(f["candidate_id"]),
                f["span_message"] if f["span_message"] is not None else -1,
                f["span_start"],
                f["span_end"],
                f["severity"] or "",
                f["note"] or "",
            )
            for f in self.flaws
        )
        return (ratings, critiques, flaws)


async def _still_there(session: AsyncSession, ids: Sequence[str]) -> set[str]:
    """Of the critiques an assignment showed, those that still exist (a rater's critique is gone
    once its author takes it back in a revision), locked FOR KEY SHARE so that they stay until this
    transaction's ratings of them are stored. Taken before any item lock (docs/ARCHITECTURE.md,
    "Locks"): a revision taking its critique back holds its item, so waiting for the critique with
    the item held could deadlock, and checking it without a lock let the rating's foreign key fail
    (a 500) when the revision committed in between. A critique being taken back is waited for,
    then left out."""
    if not ids:
        return set()
    shown = select(Critique.id).where(Critique.id.in_([uuid.UUID(i) for i in ids])).order_by(Critique.id)
    return {str(i) for i in await session.scalars(shown.with_for_update(key_share=True))}


def _check_ratings(
    project: Project,
    offered: set[str],
    existing: set[str],
    ratings: Sequence[CritiqueRatingCreate] | None,
) -> list[dict[str, Any]]:
    """The ratings to store: each of a critique the assignment showed, once; a rating of a shown
    critique that no longer exists is left out. `required`: every existing one rated."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, rating in enumerate(ratings or ()):
        key = str(rating.critique_id)
        if key not in offered:
            raise Invalid(NOT_SHOWN.format(index=index, id=rating.critique_id))
        if key in seen:
            raise Invalid(RATED_TWICE.format(index=index, id=rating.critique_id))
        seen.add(key)
        if key in existing:
            out.append({"critique_id": rating.critique_id, "verdict": str(rating.verdict), "helpful": rating.helpful})
    if project.critique_ratings == CritiqueRatings.required:
        missing = len(existing - {str(r["critique_id"]) for r in out if r["helpful"] is not None})
        if missing:
            raise Invalid(RATINGS_REQUIRED.format(missing=missing))
    return out


async def check(
    session: AsyncSession,
    *,
    project: Project,
    assignment: Assignment,
    ratings: Sequence[CritiqueRatingCreate] | None,
    critiques: Sequence[RaterCritiqueCreate] | None,
    flaws: Sequence[FlawCreate] | None = None,
) -> Extras:
    """Validate a judgment's ratings, critiques and flaws against what the assignment showed (422 otherwise)."""
    offered = assistance.shown_ids(assignment)
    checked = _check_ratings(project, set(offered), await _still_there(session, offered), ratings)
    rows = []
    candidates: dict[uuid.UUID, Candidate] = {}
    if critiques or flaws:
        candidates = {
            c.id: c for c in await session.scalars(select(Candidate).where(Candidate.item_id == assignment.item_id))
        }
    if critiques:
        for index, critique in enumerate(critiques):
            where = f"critiques[{index}]"
            candidate = candidates.get(critique.candidate_id)
            if candidate is None or candidate.id not in assignment.shown_order:
                raise Invalid(NOT_A_CANDIDATE.format(field=where, id=critique.candidate_id))
            span = _span(candidate, critique.span, critique.message, where)
            rows.append(
                _row(
                    candidate,
                    span,
                    project_id=assignment.project_id,
                    text=critique.text.strip() or critique.text,
                    severity=None if critique.severity is None else str(critique.severity),
                )
            )
    marked = []
    for index, flaw in enumerate(flaws or ()):
        where = f"flaws[{index}]"
        candidate = candidates.get(flaw.candidate_id)
        if candidate is None or candidate.id not in assignment.shown_order:
            raise Invalid(NOT_A_CANDIDATE.format(field=where, id=flaw.candidate_id))
        span = _span(candidate, flaw.span, flaw.message, where)
        note = (flaw.note or "").strip() or None
        marked.append(
            _row(
                candidate,
                span,
                project_id=assignment.project_id,
                severity=str(flaw.severity),
                note=note,
                position=index,
            )
        )
    return Extras(ratings=checked, critiques=rows, flaws=marked)


async def stored(session: AsyncSession, judgment: Judgment) -> Extras:
    """A judgment's stored ratings and critiques, as `check` returns them (to compare a resend)."""
    ratings = [
        {"critique_id": r.critique_id, "verdict": r.verdict, "helpful": r.helpful}
        for r in await session.scalars(select(CritiqueRating).where(CritiqueRating.judgment_id == judgment.id))
    ]
    critiques = [
        {
            "candidate_id": c.candidate_id,
            "text": c.text,
            "span_message": c.span_message,
            "span_start": c.span_start,
            "span_end": c.span_end,
            "severity": c.severity,
        }
        for c in await session.scalars(select(Critique).where(Critique.judgment_id == judgment.id))
    ]
    flaws = [
        {
            "candidate_id": f.candidate_id,
            "span_message": f.span_message,
            "span_start": f.span_start,
            "span_end": f.span_end,
            "severity": f.severity,
            "note": f.note,
            "position": f.position,
        }
        for f in await marked_flaws(session, judgment.id)
    ]
    return Extras(ratings=ratings, critiques=critiques, flaws=flaws)


async def marked_flaws(session: AsyncSession, judgment_id: uuid.UUID) -> list[Flaw]:
    """The flaws a judgment marks, in the order they were sent."""
    return list(await session.scalars(select(Flaw).where(Flaw.judgment_id == judgment_id).order_by(Flaw.position)))


@dataclass(frozen=True, slots=True)
class WrittenOnPage:
    """A rater's own critique as the revision page fills its box: the text and the span field."""

    text: str
    span: str  # "start,end", "message:start,end", or ""


async def on_page(
    session: AsyncSession, judgment: Judgment
) -> tuple[dict[str, tuple[str, str]], dict[str, WrittenOnPage]]:
    """A judgment's ratings (critique id → verdict, "yes"/"no"/"") and critiques (candidate id →
    box), for the revision page to show them as sent."""
    ratings = {
        str(r.critique_id): (r.verdict, "" if r.helpful is None else "yes" if r.helpful else "no")
        for r in await session.scalars(select(CritiqueRating).where(CritiqueRating.judgment_id == judgment.id))
    }
    written = {}
    for c in await session.scalars(select(Critique).where(Critique.judgment_id == judgment.id)):
        span = "" if c.span_start is None else f"{c.span_start},{c.span_end}"
        if span and c.span_message is not None:
            span = f"{c.span_message}:{span}"
        written[str(c.candidate_id)] = WrittenOnPage(text=c.text, span=span)
    return ratings, written


async def store(
    session: AsyncSession, *, judgment: Judgment, rater: User, extras: Extras, replace: bool = False
) -> None:
    """Write a judgment's ratings and critiques; with `replace`, those of its earlier revision go first,
    except the rater's critiques sent again unchanged, which keep their rows (and so their ids, which
    other raters' assignments may show and their ratings name)."""
    written = list(extras.critiques)
    if replace:
        await session.execute(delete(CritiqueRating).where(CritiqueRating.judgment_id == judgment.id))
        written = await _replace_written(session, judgment.id, written)
        await session.execute(delete(Flaw).where(Flaw.judgment_id == judgment.id))
    if extras.ratings:
        await session.execute(insert(CritiqueRating), [r | {"judgment_id": judgment.id} for r in extras.ratings])
    if written:
        rows = [c | {"id": uuid.uuid4(), "judgment_id": judgment.id, "author_id": rater.id} for c in written]
        await session.execute(insert(Critique), rows)
    if extras.flaws:
        await session.execute(
            insert(Flaw), [f | {"id": uuid.uuid4(), "judgment_id": judgment.id} for f in extras.flaws]
        )


# What makes a rater's critique sent again the same as a stored one (the row's columns, as `check` fills them).
_WRITTEN = ("candidate_id", "text", "span_message", "span_start", "span_end", "severity")


def _same_written(sent: dict[str, Any], stored: Critique) -> bool:
    return all(sent[name] == getattr(stored, name) for name in _WRITTEN)


async def _replace_written(
    session: AsyncSession, judgment_id: uuid.UUID, sent: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Delete the judgment's critiques not sent again; return the sent ones still to insert."""
    to_insert = list(sent)
    gone = []
    for old in await session.scalars(
        select(Critique).where(Critique.judgment_id == judgment_id).order_by(Critique.seq)
    ):
        same = next((i for i, c in enumerate(to_insert) if _same_written(c, old)), None)
        if same is None:
            gone.append(old.id)
        else:
            del to_insert[same]
    if gone:
        await session.execute(delete(Critique).where(Critique.id.in_(gone)))
    return to_insert
