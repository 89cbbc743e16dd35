"""The rater's pages: my projects, the labeling page, and its submit/skip fragments.

The labeling page always holds two leases: the item on screen and the next one, rendered but
hidden. Submitting swaps the hidden one in at once (rater.js) while the request stores the
verdict and leases the item after it, which comes back as the new hidden one. See
docs/ARCHITECTURE.md, "The rater page".
"""

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.service import Principal
from server.db import SessionDep
from server.errors import AssayError
from server.labeling import overview, pages, service
from server.labeling.api import assignment_view
from server.labeling.rules import RATIONALE_REQUIRED
from server.labeling.schemas import AssignmentRead
from server.markdown import render_markdown
from server.models import Project
from server.projects import service as projects
from server.web.deps import PagePrincipal, RaterPagePrincipal
from server.web.templating import is_htmx, render

router = APIRouter(include_in_schema=False)
MESSAGES = {
    "verdict": pages.NO_VERDICT,
    "ranking": pages.NO_RANKING,
    "strength": pages.NO_STRENGTH,
    "rationale": RATIONALE_REQUIRED,
    "network": pages.NETWORK_FAILED,
    "server": pages.SERVER_FAILED,
}


@dataclass(frozen=True, slots=True)
class Slot:
    """One entry of the page's queue: an item to judge, or why there is none (done, or stopped)."""

    kind: str  # "item" | "done" | "stopped"
    view: AssignmentRead | None = None
    form: pages.VerdictForm | None = None
    message: str = ""


def _slot(project: Project, leased: service.Leased | None) -> Slot:
    if leased is None:
        return Slot(kind="done")
    view = assignment_view(leased)
    return Slot(kind="item", view=view, form=pages.verdict_form(project, view))


async def _lease_ahead(session: AsyncSession, project: Project, rater: Principal, holding: set[uuid.UUID]) -> Slot:
    """Lease the item after the ones the page holds; a paused project or lost access ends the queue."""
    try:
        leased = await service.next_assignment(session, project=project, rater=rater.user, exclude=holding)
    except AssayError as exc:  # raised before any write: the verdict in this transaction stays
        return Slot(kind="stopped", message=exc.message)
    return _slot(project, leased)


def _holding(ahead: str) -> set[uuid.UUID]:
    ids = set()
    for part in ahead.split(","):
        try:
            ids.add(uuid.UUID(part))
        except ValueError:
            continue
    return ids


@router.get("/")
async def my_projects(request: Request, principal: PagePrincipal, session: SessionDep) -> Response:
    """The projects shared with me, with what I judged today and what is left."""
    rows = await overview.rater_projects(session, rater=principal.user)
    return render(request, "labeling/projects.html", {"rows": rows})


@router.get("/projects/{project_id}/label")
async def label_page(
    project_id: uuid.UUID, request: Request, rater: RaterPagePrincipal, session: SessionDep
) -> Response:
    """The labeling page: the current item on screen and the next one already leased behind it."""
    project = await projects.get_accessible(session, rater, project_id)
    current = await service.next_assignment(session, project=project, rater=rater.user)
    slots = [_slot(project, current)]
    if current is not None:
        slots.append(await _lease_ahead(session, project, rater, {current.assignment.id}))
    context = {
        "project": project,
        "instructions_html": render_markdown(project.instructions),
        "judged_today": await overview.judged_today(session, rater=rater.user, project=project),
        "slots": slots,
        "messages": MESSAGES,
    }
    return render(request, "labeling/label.html", context)


async def _answer(
    request: Request, session: AsyncSession, rater: Principal, project: Project, ahead: str, notice: str
) -> Response:
    """After a submit or skip: the next hidden item for htmx, or back to the page for a plain form."""
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{project.id}/label", status_code=303)
    slot = await _lease_ahead(session, project, rater, _holding(ahead))
    context = {"project": project, "slots": [slot], "notice": notice, "messages": MESSAGES}
    return render(request, "labeling/label.html", context, block="prefetched")


async def _inline_error(request: Request, session: AsyncSession, assignment_id: uuid.UUID, exc: AssayError) -> Response:
    """A refused verdict, shown in its item's error box (the page keeps everything the rater typed)."""
    await session.rollback()
    if not is_htmx(request):
        raise exc
    headers = {"HX-Retarget": f"#error-{assignment_id}", "HX-Reswap": "innerHTML"}
    return render(
        request,
        "labeling/label.html",
        {"message": exc.message},
        status_code=exc.status_code,
        block="error",
        headers=headers,
    )


@router.post("/assignments/{assignment_id}/judge")
async def judge(
    assignment_id: uuid.UUID,
    request: Request,
    rater: RaterPagePrincipal,
    session: SessionDep,
    verdict: Annotated[str | None, Form()] = None,
    ranking: Annotated[str | None, Form()] = None,
    strength: Annotated[str | None, Form()] = None,
    rationale: Annotated[str | None, Form()] = None,
    active_ms: Annotated[str | None, Form()] = None,
    ahead: Annotated[str, Form()] = "",
) -> Response:
    """Store the verdict (a retry stores nothing new) and answer with the item after the next."""
    try:
        data = pages.verdict_from_form(
            verdict=verdict, ranking=ranking, strength=strength, rationale=rationale, active_ms=active_ms
        )
        result = await service.submit(session, assignment_id=assignment_id, rater=rater.user, data=data)
    except AssayError as exc:
        return await _inline_error(request, session, assignment_id, exc)
    notice = pages.SURPLUS if result.created and result.judgment.surplus else ""
    return await _answer(request, session, rater, result.project, ahead, notice)


@router.post("/assignments/{assignment_id}/skip")
async def skip(
    assignment_id: uuid.UUID,
    request: Request,
    rater: RaterPagePrincipal,
    session: SessionDep,
    ahead: Annotated[str, Form()] = "",
) -> Response:
    """Hand the item back (it is not offered to me again) and answer with the item after the next."""
    try:
        assignment = await service.skip(session, assignment_id=assignment_id, rater=rater.user, reason=None)
    except AssayError as exc:
        return await _inline_error(request, session, assignment_id, exc)
    return await _answer(request, session, rater, await session.get_one(Project, assignment.project_id), ahead, "")
