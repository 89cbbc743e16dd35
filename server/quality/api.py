"""Gold answers on items, and the project's quality figures, over JSON."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from server.auth.deps import AdminPrincipal, scoped
from server.auth.service import Principal
from server.db import SessionDep
from server.errors import error_responses
from server.models import Scope
from server.projects import service as projects
from server.quality import reliability, service
from server.quality.schemas import Fresh, GoldBody, ItemGoldRead, ProjectQuality

router = APIRouter(tags=["quality"])
ItemsWriter = Annotated[Principal, Depends(scoped(Scope.items_write))]


@router.put("/items/{item_id}/gold", response_model=ItemGoldRead, responses=error_responses(409))
async def put_gold(item_id: uuid.UUID, body: GoldBody, principal: ItemsWriter, session: SessionDep) -> ItemGoldRead:
    """Give an item a gold answer (or change it): it leaves the queue and is served as gold."""
    _, project = await projects.get_accessible_item(session, principal, item_id)
    item = await service.set_gold(session, project, item_id, body.model_dump(exclude_none=True))
    await session.commit()
    return ItemGoldRead(item_id=item.id, gold=item.gold)


@router.delete("/items/{item_id}/gold", status_code=204, responses=error_responses(409))
async def delete_gold(item_id: uuid.UUID, principal: ItemsWriter, session: SessionDep) -> Response:
    """Make a gold item ordinary work again, at the project's overlap."""
    _, project = await projects.get_accessible_item(session, principal, item_id)
    await service.clear_gold(session, project, item_id)
    await session.commit()
    return Response(status_code=204)


@router.get("/projects/{project_id}/quality", response_model=ProjectQuality, response_model_by_alias=True)
async def quality(
    project_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep, fresh: Fresh = False
) -> ProjectQuality:
    """Agreement (pairwise, Krippendorff's alpha, per batch) and each member's reliability, biases and flags."""
    project = await projects.get_accessible(session, admin, project_id)
    figures = await reliability.project_quality(session, project, fresh=fresh)
    return ProjectQuality.model_validate(figures)
