"""The admin page of a project's model leaderboard."""

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.db import SessionDep
from server.leaderboard import service
from server.projects import service as projects
from server.quality.cache import Computing
from server.quality.leaderboard import CENTRE
from server.web import charts
from server.web.deps import AdminPagePrincipal
from server.web.templating import render

router = APIRouter(prefix="/admin", include_in_schema=False)


@router.get("/projects/{project_id}/leaderboard")
async def leaderboard(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Ratings with their intervals drawn as bars, the head-to-head win rates as a heat table, battles."""
    project = await projects.get_accessible(session, admin, project_id)
    try:
        board = await service.get(session, project, page=True)
    except Computing:
        return render(request, "admin/leaderboard/detail.html", {"project": project, "board": None})
    await session.commit()  # keeps a freshly computed figure
    chart = charts.interval_chart(
        [(r["model"], r["rating"], r["ci_low"], r["ci_high"]) for r in board.ratings],
        id="leaderboard",
        title="Model ratings with 95% intervals",
        reference=(CENTRE, f"{CENTRE:,.0f}: the mean rating"),
    )
    context = {"project": project, "board": board, "chart": chart, "heat_style": charts.heat_style}
    return render(request, "admin/leaderboard/detail.html", context)
