"""Gold answers on items, and the project's quality figures, over JSON."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select

from server.auth.deps import AdminPrincipal, scoped
from server.auth.service import Principal
from server.db import SessionDep
from server.errors import NotFound, error_responses
from server.models import Item, Project, Scope
from server.projects import service as projects
from server.quality import service
from server.quality.schemas import GoldBody, ItemGoldRead, ProjectQuality, RaterQuality

router = APIRouter(tags=["quality"])
ItemsWriter = Annotated[Principal, Depends(scoped(Scope.items_write))]


async def _project_of_item(session: SessionDep, principal: Principal, item_id: uuid.UUID) -> Project:
    """The item's project, if the caller may see it; one 404 for "no such item" and "not yours"."""
    project_id = await session.scalar(select(Item.project_id).where(Item.id == item_id))
    try:
        if project_id is None:
            raise NotFound("")
        return await projects.get_accessible(session, principal, project_id)
    except NotFound:
        raise NotFound(f"No item {item_id} is shared with you.") from None


@router.put("/items/{item_id}/gold", response_model=ItemGoldRead, responses=error_responses(409))
async def put_gold(item_id: uuid.UUID, body: GoldBody, principal: ItemsWriter, session: SessionDep) -> ItemGoldRead:
    """Give an item a gold answer (or change it): it leaves the queue and is served as gold."""
    project = await _project_of_item(session, principal, item_id)
    item = await service.set_gold(session, project, item_id, body.model_dump(exclude_none=True))
    await session.commit()
    return ItemGoldRead(item_id=item.id, gold=item.gold)


@router.delete("/items/{item_id}/gold", status_code=204, responses=error_responses(409))
async def delete_gold(item_id: uuid.UUID, principal: ItemsWriter, session: SessionDep) -> Response:
    """Make a gold item ordinary work again, at the project's overlap."""
    project = await _project_of_item(session, principal, item_id)
    await service.clear_gold(session, project, item_id)
    await session.commit()
    return Response(status_code=204)


@router.get("/projects/{project_id}/quality", response_model=ProjectQuality)
async def quality(project_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep) -> ProjectQuality:
    """Each member's gold accuracy, overall and over the last 20 gold items, with 95% intervals."""
    project = await projects.get_accessible(session, admin, project_id)
    figures = await service.gold_figures(session, project)
    return ProjectQuality(
        raters=[
            RaterQuality(
                user_id=f.user_id,
                email=f.email,
                suspended=f.suspended,
                gold_judged=f.gold_judged,
                gold_scored=f.gold_scored,
                gold_accuracy=f.gold_accuracy,
                gold_ci=f.gold_ci,
                recent_gold_accuracy=f.recent_accuracy,
                recent_gold_ci=f.recent_ci,
                qualified=f.qualified,
                suspended_reason=f.suspended_reason,
            )
            for f in figures
        ]
    )
