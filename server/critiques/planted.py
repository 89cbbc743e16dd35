"""Flaws planted on purpose in an item's candidates: set by the import, the API
(`PUT /items/{id}/planted`) or the admin item page; read only by admins and the catch rule
(critiques/flaws.py). Nothing here is ever shown to raters: like gold, a planted flaw leaves no
trace in the rater page or the assignment API.
"""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.critiques.schemas import (
    MAX_PLANTED_DESCRIPTION,
    MAX_PLANTED_PER_CANDIDATE,
    PlantedForCandidate,
    PlantedRead,
)
from server.errors import Invalid, NotFound
from server.labeling.spans import SpanError, parse_span
from server.models import Candidate, Item, PlantedFlaw, User

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
    label: str,
    actor: User,
) -> PlantedFlaw:
    """Plant one flaw (the admin item page); `label` names the response in a refusal."""
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
        raise Invalid(TOO_MANY.format(label=label, limit=MAX_PLANTED_PER_CANDIDATE))
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
