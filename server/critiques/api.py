"""Critiques over JSON: a critique service (a model) adds critiques to an item's candidates; an
admin or trainer sets the flaws planted in them (hidden from raters)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from server.auth.deps import AdminPrincipal, scoped
from server.auth.service import Principal
from server.critiques import planted, report, service
from server.critiques.schemas import (
    AssistanceReportRead,
    CritiqueRead,
    CritiquesCreate,
    PlantedPut,
    PlantedRead,
)
from server.db import SessionDep
from server.models import Scope
from server.projects import service as projects
from server.projects.schemas import MAX_GROUP
from server.quality.experiment import EFFECT
from server.quality.schemas import Fresh

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
    item, _ = await projects.get_accessible_item(session, principal, item_id)
    added = await service.add(session, item=item, data=body.critiques)
    return [service.read(c) for c in added]


@router.get("/items/{item_id}/planted", response_model=list[PlantedRead])
async def get_planted(item_id: uuid.UUID, principal: ItemsWriter, session: SessionDep) -> object:
    """The flaws planted in an item's candidates (never shown to raters)."""
    item, _ = await projects.get_accessible_item(session, principal, item_id)
    return [planted.read(p) for p in await planted.of_item(session, item.id)]


@router.put("/items/{item_id}/planted", response_model=list[PlantedRead])
async def put_planted(item_id: uuid.UUID, body: PlantedPut, principal: ItemsWriter, session: SessionDep) -> object:
    """Set every planted flaw of an item, per candidate (replaces those it had; all or none).

    A planted flaw counts as caught when a rater marks an overlapping span, or prefers the other
    response of a pair where only one carries planted flaws (critiques/flaws.py)."""
    item, _ = await projects.get_accessible_item(session, principal, item_id)
    result = await planted.replace(session, item=item, data=body.candidates, actor=principal.user)
    await session.commit()
    return [planted.read(p) for p in result]


@router.get("/projects/{project_id}/assistance-report", response_model=AssistanceReportRead)
async def assistance_report(
    project_id: uuid.UUID,
    admin: AdminPrincipal,
    session: SessionDep,
    effect: Annotated[
        float, Query(gt=0, le=1, description="The difference to detect: points for rates (0.10 = 10 points).")
    ] = EFFECT,
    group: Annotated[str | None, Query(max_length=MAX_GROUP, description="Only raters of this group.")] = None,
    batch: Annotated[uuid.UUID | None, Query(description="Only judgments of items of this batch.")] = None,
    fresh: Fresh = False,
) -> object:
    """The assistance experiment: per arm, the differences with 95% intervals and p-values, judgments needed."""
    project = await projects.get_accessible(session, admin, project_id)
    return await report.assistance_report(session, project, effect=effect, group=group, batch_id=batch, fresh=fresh)
