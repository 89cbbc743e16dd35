"""Critiques over JSON: a critique service (a model) adds critiques to an item's candidates; an
admin or trainer sets the flaws planted in them (hidden from raters)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from server.auth.deps import scoped
from server.auth.service import Principal
from server.critiques import planted, service
from server.critiques.schemas import CritiqueRead, CritiquesCreate, PlantedPut, PlantedRead
from server.db import SessionDep
from server.errors import NotFound
from server.models import Item, Scope
from server.projects import service as projects

router = APIRouter(tags=["critiques"])
ItemsWriter = Annotated[Principal, Depends(scoped(Scope.items_write))]


@router.post(
    "/items/{item_id}/critiques",
    response_model=list[CritiqueRead],
    status_code=201,
)
async def add_critiques(
    item_id: uuid.UUID, body: CritiquesCreate, principal: ItemsWriter, session: SessionDep
) -> object:
    """Add critiques of an item's candidates (all or none): raters see them only as assistance."""
    item = await service.item_of(session, item_id)
    await projects.get_accessible(session, principal, item.project_id)
    added = await service.add(session, item=item, data=body.critiques)
    return [service.read(c) for c in added]


async def _item(session: SessionDep, principal: Principal, item_id: uuid.UUID) -> Item:
    """The item if the caller may see its project; one 404 for "no such item" and "not yours"."""
    item = await session.get(Item, item_id)
    try:
        if item is None:
            raise NotFound("")
        await projects.get_accessible(session, principal, item.project_id)
    except NotFound:
        raise NotFound(f"No item {item_id} is shared with you.") from None
    return item


@router.get("/items/{item_id}/planted", response_model=list[PlantedRead])
async def get_planted(item_id: uuid.UUID, principal: ItemsWriter, session: SessionDep) -> object:
    """The flaws planted in an item's candidates (never shown to raters)."""
    item = await _item(session, principal, item_id)
    return [planted.read(p) for p in await planted.of_item(session, item.id)]


@router.put("/items/{item_id}/planted", response_model=list[PlantedRead])
async def put_planted(item_id: uuid.UUID, body: PlantedPut, principal: ItemsWriter, session: SessionDep) -> object:
    """Set every planted flaw of an item, per candidate (replaces those it had; all or none).

    A planted flaw counts as caught when a rater marks an overlapping span, or prefers the other
    response of a pair where only one carries planted flaws (critiques/flaws.py)."""
    item = await _item(session, principal, item_id)
    result = await planted.replace(session, item=item, data=body.candidates, actor=principal.user)
    await session.commit()
    return [planted.read(p) for p in result]
