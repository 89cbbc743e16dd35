"""Admin pages of the data browser: a project's items, one item, one rater's judgments."""

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.db import SessionDep
from server.errors import Invalid
from server.items import service
from server.items.filters import STATUS_LABELS, VERDICT_LABELS, parse
from server.models import Role
from server.projects import service as projects
from server.quality import reliability
from server.quality.cache import Computing
from server.users import service as users
from server.web.deps import AdminPagePrincipal
from server.web.templating import render

router = APIRouter(prefix="/admin", include_in_schema=False)


@router.get("/projects/{project_id}/items")
async def browse(request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """A project's items in import order, filtered; htmx swaps the `results` block."""
    project = await projects.get_accessible(session, admin, project_id)
    filters = parse(request.query_params)
    context = {
        "project": project,
        "filters": filters,
        "page": await service.browse(session, project, filters),
        "batches": await service.batch_names(session, project),
        "raters": [m for m in await projects.list_members(session, project) if m.role != Role.trainer],
        "statuses": STATUS_LABELS,
        "verdicts": VERDICT_LABELS,
    }
    return render(request, "admin/items/list.html", context)


@router.get("/items/{item_id}")
async def item(request: Request, item_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """One item: its candidates as raters saw them, every judgment and every skip."""
    detail = await service.get_item(session, item_id)
    project = await projects.get_accessible(session, admin, detail.item.project_id)
    return render(request, "admin/items/detail.html", {"project": project, "d": detail})


@router.get("/projects/{project_id}/raters/{user_id}")
async def rater(
    request: Request, project_id: uuid.UUID, user_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """One rater's quality figures, flags and trend, and their judgments in the project, newest first."""
    project = await projects.get_accessible(session, admin, project_id)
    before = request.query_params.get("before", "")
    if before and (not before.isdigit() or len(before) > 18):
        raise Invalid("before must be the position of a judgment, as in the link to older judgments.")
    person = await users.get(session, user_id)
    page = await service.rater_judgments(session, project, person, before=int(before) if before else None)
    try:
        quality, computing = await reliability.rater_quality(session, project, person.id), False
    except Computing:
        quality, computing = None, True
    context = {
        "project": project,
        "rater": person,
        "page": page,
        "limit": service.COUNT_LIMIT,
        "quality": quality,
        "quality_computing": computing,
    }
    return render(request, "admin/items/rater.html", context)
