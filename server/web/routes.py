"""HTML pages (the rater and admin pages build on this router)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from server.web.templating import templates

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """The landing page: where the API and its documentation are."""
    return templates.TemplateResponse(request, "home.html", {})
