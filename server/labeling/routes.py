"""The rater's pages: my projects, and the labeling page with its htmx fragments."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.db import SessionDep
from server.labeling import overview
from server.web.deps import PagePrincipal
from server.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/")
async def my_projects(request: Request, principal: PagePrincipal, session: SessionDep) -> Response:
    """The projects shared with me, with what I judged today and what is left."""
    rows = await overview.rater_projects(session, rater=principal.user)
    return render(request, "labeling/projects.html", {"rows": rows})
