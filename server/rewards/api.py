"""Reward models over JSON: trainers report models and post scores; admins see the queue they shape."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from server.auth.deps import AdminPrincipal, CurrentPrincipal, ExportPrincipal, scoped
from server.auth.service import Principal
from server.db import SessionDep
from server.models import Scope
from server.projects import service as projects
from server.rewards import service
from server.rewards.schemas import (
    OpenItemsPage,
    QueuedItem,
    RewardModelCreate,
    RewardModelRead,
    ScoresCreate,
    ScoresResult,
    Version,
)

router = APIRouter(tags=["reward models"])
RewardModelsWriter = Annotated[Principal, Depends(scoped(Scope.reward_models_write))]


@router.post(
    "/projects/{project_id}/reward-models",
    response_model=RewardModelRead,
    status_code=201,
    responses={200: {"model": RewardModelRead, "description": "The same run was reported before."}},
)
async def report_model(
    project_id: uuid.UUID, body: RewardModelCreate, trainer: RewardModelsWriter, session: SessionDep
) -> JSONResponse:
    """Report a trained reward model; it becomes the project's next version (201), or the same run's (200)."""
    project = await projects.get_accessible(session, trainer, project_id)
    model, created = await service.report(session, project=project, trainer=trainer.user, data=body)
    read = RewardModelRead.model_validate(model)
    return JSONResponse(read.model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/projects/{project_id}/reward-models", response_model=list[RewardModelRead])
async def list_models(project_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> object:
    """The project's reward models with their metrics, oldest version first."""
    return await service.list_models(session, await projects.get_accessible(session, principal, project_id))


@router.get("/projects/{project_id}/reward-models/{version}", response_model=RewardModelRead)
async def get_model(
    project_id: uuid.UUID, version: Version, principal: CurrentPrincipal, session: SessionDep
) -> object:
    """One reward model version."""
    project = await projects.get_accessible(session, principal, project_id)
    return await service.get_model(session, project, version)


@router.post("/projects/{project_id}/reward-models/{version}/scores", response_model=ScoresResult)
async def post_scores(
    project_id: uuid.UUID, version: Version, body: ScoresCreate, trainer: RewardModelsWriter, session: SessionDep
) -> ScoresResult:
    """Store this model's scores of items; with active learning on, uncertain items move up the queue."""
    project = await projects.get_accessible(session, trainer, project_id)
    model = await service.get_model(session, project, version)
    return await service.record_scores(session, project=project, model=model, scores=body.scores)


@router.get("/projects/{project_id}/open-items", response_model=OpenItemsPage)
async def open_items(
    project_id: uuid.UUID,
    principal: ExportPrincipal,
    session: SessionDep,
    after: str | None = Query(default=None, description="The next_cursor of the previous page."),
    limit: int = Query(default=500, ge=1, le=5000),
) -> OpenItemsPage:
    """Items still waiting for judgments (prompt and candidates only), for a model to score."""
    project = await projects.get_accessible(session, principal, project_id)
    return await service.open_items(session, project=project, after=after, limit=limit)


@router.get("/projects/{project_id}/queue", response_model=list[QueuedItem])
async def queue(
    project_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep, limit: int = Query(default=50, ge=1, le=1000)
) -> list[QueuedItem]:
    """The next open items in the order raters will get them, with their scores and priority reasons."""
    project = await projects.get_accessible(session, admin, project_id)
    return await service.queue(session, project=project, limit=limit)
