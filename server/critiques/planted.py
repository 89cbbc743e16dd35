"""Flaws planted on purpose in an item's candidates: set by the import, the API
(`PUT /items/{id}/planted`) or the admin item page; read only by admins and the catch rule
(critiques/flaws.py). Nothing here is ever shown to raters: like gold, a planted flaw leaves no
trace in the rater page or the assignment API.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.critiques.flaws import ItemCatches, item_catches
from server.critiques.schemas import (
    MAX_PLANTED_DESCRIPTION,
    MAX_PLANTED_PER_CANDIDATE,
    PlantedForCandidate,
    PlantedRead,
)
from server.errors import Invalid, NotFound
from server.labeling.pages import Highlighted, marked
from server.labeling.schemas import CandidateView
from server.labeling.spans import Span, SpanError, parse_span, quote, response_text
from server.models import Candidate, Critique, Flaw, Item, PlantedFlaw, User

NOT_A_CANDIDATE = "{field}.candidate_id {id} is not one of this item's candidates."
LISTED_TWICE = "{field}.candidate_id {id} is listed again; give each candidate's planted flaws in one entry."
TOO_MANY = "Response {label} already has {limit} planted flaws, the most a response may have; remove one first."
NO_DESCRIPTION = "Describe the planted flaw: what is wrong in the marked text."
DESCRIPTION_TOO_LONG = "The description is longer than {limit:,} characters; please shorten it."
NOT_PLANTED = "No planted flaw {id} in this item."


def read(flaw: PlantedFlaw) -> PlantedRead:
    return PlantedRead(
        id=flaw.id,
        candidate_id=flaw.candidate_id,
        span=[flaw.span_start, flaw.span_end],
        message=flaw.span_message,
        description=flaw.description,
    )


async def of_item(session: AsyncSession, item_id: uuid.UUID) -> list[PlantedFlaw]:
    """An item's planted flaws, by candidate position, then as planted."""
    return list(
        await session.scalars(
            select(PlantedFlaw)
            .join(Candidate, Candidate.id == PlantedFlaw.candidate_id)
            .where(PlantedFlaw.item_id == item_id)
            .order_by(Candidate.position, PlantedFlaw.created_at, PlantedFlaw.span_start, PlantedFlaw.id)
        )
    )


async def _locked_candidates(session: AsyncSession, item: Item) -> dict[uuid.UUID, Candidate]:
    # The item row is the lock (FOR NO KEY UPDATE, as critiques.add): two writers queue up, so a
    # replace and an add cannot interleave and pass the per-response limit together.
    await session.execute(select(Item.id).where(Item.id == item.id).with_for_update(key_share=True))
    return {c.id: c for c in await session.scalars(select(Candidate).where(Candidate.item_id == item.id))}


def _span(candidate: Candidate, span: Any, message: Any, field: str) -> tuple[int, int, int | None]:
    try:
        parsed = parse_span(span, message, text=candidate.text, messages=candidate.messages, field=field)
    except SpanError as exc:
        raise Invalid(exc.message) from None
    return parsed.start, parsed.end, parsed.message


async def replace(
    session: AsyncSession, *, item: Item, data: Sequence[PlantedForCandidate], actor: User
) -> list[PlantedFlaw]:
    """Every planted flaw of the item, all or none: a candidate left out keeps none."""
    candidates = await _locked_candidates(session, item)
    rows: list[dict[str, Any]] = []
    seen: set[uuid.UUID] = set()
    for index, entry in enumerate(data):
        where = f"candidates[{index}]"
        candidate = candidates.get(entry.candidate_id)
        if candidate is None:
            raise Invalid(NOT_A_CANDIDATE.format(field=where, id=entry.candidate_id))
        if candidate.id in seen:
            raise Invalid(LISTED_TWICE.format(field=where, id=entry.candidate_id))
        seen.add(candidate.id)
        for k, flaw in enumerate(entry.planted):
            start, end, message = _span(candidate, flaw.span, flaw.message, f"{where}.planted[{k}].span")
            rows.append(_row(item, candidate, start, end, message, flaw.description.strip() or flaw.description, actor))
    await session.execute(delete(PlantedFlaw).where(PlantedFlaw.item_id == item.id))
    if rows:
        await session.execute(insert(PlantedFlaw), rows)
    audit.record(
        session,
        actor=actor,
        action="item.planted",
        target_type="item",
        target_id=item.id,
        project_id=item.project_id,
        data={"planted": len(rows)},
    )
    await session.flush()
    return await of_item(session, item.id)


def _row(
    item: Item, candidate: Candidate, start: int, end: int, message: int | None, description: str, actor: User
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "project_id": item.project_id,
        "item_id": item.id,
        "candidate_id": candidate.id,
        "span_start": start,
        "span_end": end,
        "span_message": message,
        "description": description,
        "created_by": actor.id,
    }


async def add(
    session: AsyncSession,
    *,
    item: Item,
    candidate_id: uuid.UUID,
    span: list[int],
    message: int | None,
    description: str,
    actor: User,
) -> PlantedFlaw:
    """Plant one flaw (the admin item page)."""
    candidates = await _locked_candidates(session, item)
    candidate = candidates.get(candidate_id)
    if candidate is None:
        raise Invalid(NOT_A_CANDIDATE.format(field="planted", id=candidate_id))
    text = description.strip()
    if not text:
        raise Invalid(NO_DESCRIPTION)
    if len(text) > MAX_PLANTED_DESCRIPTION:
        raise Invalid(DESCRIPTION_TOO_LONG.format(limit=MAX_PLANTED_DESCRIPTION))
    if "\x00" in text:
        raise Invalid("The description contains a NUL character (\\u0000), which cannot be stored; remove it.")
    start, end, index = _span(candidate, span, message, "The span")
    have = len(list(await session.scalars(select(PlantedFlaw.id).where(PlantedFlaw.candidate_id == candidate.id))))
    if have >= MAX_PLANTED_PER_CANDIDATE:
        raise Invalid(TOO_MANY.format(label=f"#{candidate.position + 1}", limit=MAX_PLANTED_PER_CANDIDATE))
    row = _row(item, candidate, start, end, index, text, actor)
    await session.execute(insert(PlantedFlaw), [row])
    audit.record(
        session, actor=actor, action="item.planted.add", target_type="item", target_id=item.id,
        project_id=item.project_id, data={"planted_id": str(row["id"])},
    )  # fmt: skip
    await session.flush()
    planted = await session.get(PlantedFlaw, row["id"])
    assert planted is not None
    return planted


async def remove(session: AsyncSession, *, item: Item, planted_id: uuid.UUID, actor: User) -> None:
    await _locked_candidates(session, item)
    gone = await session.scalar(
        delete(PlantedFlaw)
        .where(PlantedFlaw.id == planted_id, PlantedFlaw.item_id == item.id)
        .returning(PlantedFlaw.id)
    )
    if gone is None:
        raise NotFound(NOT_PLANTED.format(id=planted_id))
    audit.record(
        session, actor=actor, action="item.planted.remove", target_type="item", target_id=item.id,
        project_id=item.project_id, data={"planted_id": str(planted_id)},
    )  # fmt: skip
    await session.flush()


# --- the admin item page -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quoted:
    """A span of one response as the admin item page lists it: the row and the text it covers."""

    row: Any  # PlantedFlaw, Critique or Flaw
    quote: str | None
    where: str  # "response #2", "response #2, message 3"


@dataclass(frozen=True, slots=True)
class ItemMarks:
    """What the admin item page shows besides the verdicts: planted flaws (with how many raters
    caught each), every critique of the item, the flaws each judgment marked."""

    planted: list[Quoted]
    critiques: list[Quoted]
    flaws: dict[uuid.UUID, list[Quoted]]  # judgment → its flaws
    catches: ItemCatches
    highlights: dict[uuid.UUID, Highlighted]  # candidate → its response with planted flaws marked


def _quoted(row: Any, candidate: Candidate | None) -> Quoted:
    if candidate is None:
        return Quoted(row=row, quote=None, where="")
    where = f"response #{candidate.position + 1}"
    if row.span_start is None:
        return Quoted(row=row, quote=None, where=where)
    span = Span(row.span_start, row.span_end, row.span_message)
    if row.span_message is not None:
        where += f", message {row.span_message + 1}"
    try:
        text = response_text(candidate.text, candidate.messages, span.message)
    except (IndexError, AssertionError):
        return Quoted(row=row, quote=None, where=where)
    return Quoted(row=row, quote=quote(text, span), where=where)


async def item_marks(session: AsyncSession, item_id: uuid.UUID, candidates: Sequence[Candidate]) -> ItemMarks:
    by_id = {c.id: c for c in candidates}
    planted = await of_item(session, item_id)
    critiques = await session.scalars(select(Critique).where(Critique.item_id == item_id).order_by(Critique.seq))
    flaws: dict[uuid.UUID, list[Quoted]] = {}
    for flaw in await session.scalars(
        select(Flaw).where(Flaw.item_id == item_id).order_by(Flaw.judgment_id, Flaw.position)
    ):
        flaws.setdefault(flaw.judgment_id, []).append(_quoted(flaw, by_id.get(flaw.candidate_id)))
    highlights = {}
    for c in candidates:
        mine = [p for p in planted if p.candidate_id == c.id]
        view = CandidateView(id=c.id, label=str(c.position + 1), text=c.text, messages=c.messages)
        highlights[c.id] = marked(view, [(Span(p.span_start, p.span_end, p.span_message), str(p.id)) for p in mine])
    return ItemMarks(
        planted=[_quoted(p, by_id.get(p.candidate_id)) for p in planted],
        critiques=[_quoted(k, by_id.get(k.candidate_id)) for k in critiques],
        flaws=flaws,
        catches=await item_catches(session, item_id),
        highlights=highlights,
    )
