"""The hand-off report over JSON (admins)."""

import uuid

from fastapi import APIRouter

from server.auth.deps import AdminPrincipal
from server.db import SessionDep
from server.handoff import service
from server.handoff.schemas import HandoffReport
from server.projects import service as projects

router = APIRouter(tags=["hand-off"])


@router.get("/projects/{project_id}/handoff-report", response_model=HandoffReport)
async def handoff_report(project_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep) -> object:
    """Items the model judges resolved, the human judgments that saved, and how often the models agree with
    the humans on spot checks and by confidence (95% Wilson intervals)."""
    project = await projects.get_accessible(session, admin, project_id)
    return await service.handoff_report(session, project)
