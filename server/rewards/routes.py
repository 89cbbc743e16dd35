"""The admin page of a project's reward models: versions with their metrics over time, and the queue."""

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.db import SessionDep
from server.projects import service as projects
from server.rewards import service
from server.rewards.charts import accuracy_chart
from server.rewards.schemas import MIN_HELD_OUT_PAIRS, StoredMetrics
from server.web.deps import AdminPagePrincipal
from server.web.templating import render

router = APIRouter(prefix="/admin", include_in_schema=False)
QUEUE_ROWS = 25


@router.get("/projects/{project_id}/reward-models")
async def reward_models(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Reward model versions (accuracy against judgments, metrics) and the next items with their priority reason."""
    project = await projects.get_accessible(session, admin, project_id)
    models = await service.list_models(session, project)
    context = {
        "project": project,
        "models": list(reversed(models)),  # newest first in the table
        "metrics": {m.id: StoredMetrics.read(m.metrics) for m in models},
        "chart": accuracy_chart(models),
        "queue": await service.queue(session, project=project, limit=QUEUE_ROWS),
        "min_held_out": MIN_HELD_OUT_PAIRS,
    }
    return render(request, "admin/rewards/list.html", context)
