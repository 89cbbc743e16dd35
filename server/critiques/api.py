"""Critiques over JSON: a critique service (a model) adds critiques to an item's candidates."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from server.auth.deps import scoped
from server.auth.service import Principal
from server.critiques import service
from server.critiques.schemas import CritiqueRead, CritiquesCreate
from server.db import SessionDep
from server.models import Scope
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
