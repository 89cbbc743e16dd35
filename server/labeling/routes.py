"""The rater's pages: my projects, the labeling page, and its submit/skip fragments.

The labeling page holds two leases: the item on screen and the next one, rendered but hidden.
The page itself (GET) leases nothing; its script asks for the queue by POST, so a link can
never make a rater lease items. Submitting swaps the hidden item in at once (rater.js) while the
request stores the verdict, commits it, and leases the item after it, which comes back as the
new hidden one (labeling/flows.py). See docs/ARCHITECTURE.md, "The rater page".
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from server.critiques import service as critiques
from server.db import SessionDep
from server.errors import AssayError
from server.labeling import flows, overview, pages, revisions, service
from server.labeling.api import assignment_view
from server.labeling.rules import RATIONALE_REQUIRED
from server.labeling.schemas import AssignmentRead, JudgmentCreate
from server.models import Assignment, Assistance, Project, Role, User
from server.projects import service as projects
from server.quality import rules
from server.web.deps import PagePrincipal, RaterPagePrincipal
from server.web.forms import done
from server.web.templating import flash, is_htmx, render

router = APIRouter(include_in_schema=False)
MESSAGES = {
    "verdict": pages.NO_VERDICT,
    "ranking": pages.NO_RANKING,
    "strength": pages.NO_STRENGTH,
    "rationale": RATIONALE_REQUIRED,
    "ratings": pages.RATINGS_MISSING,
    "network": pages.NETWORK_FAILED,
    "server": pages.SERVER_FAILED,
    "load_network": pages.LOAD_NETWORK_FAILED,
    "load_server": pages.LOAD_SERVER_FAILED,
    # On a touch screen (rater.js picks these): the same sentences without keys.
    "verdict_touch": pages.NO_VERDICT_TOUCH,
    "answer": pages.NO_ANSWER,
    "answer_touch": pages.NO_ANSWER_TOUCH,
    "ranking_touch": pages.NO_RANKING_TOUCH,
    "network_touch": pages.NETWORK_FAILED_TOUCH,
    "server_touch": pages.SERVER_FAILED_TOUCH,
}


@dataclass(frozen=True, slots=True)
class Slot:
    """One entry of the page's queue: an item to judge, or why there is none (done, or stopped)."""

    kind: str  # "item" | "done" | "stopped"
    view: AssignmentRead | None = None
    form: pages.VerdictForm | None = None
    message: str = ""
    # Assisted only: each candidate's response with its critiques' spans marked, by candidate id.
    highlights: dict[uuid.UUID, pages.Highlighted] = field(default_factory=dict)
    critique_box: bool = False  # the project takes raters' own critiques (assistance is not off)
    flaw_marking: bool = False  # raters mark flaws in the responses (assistance is not off)
    # The revision page: the flaws sent, as the page's `fl` fields with their quotes.
    flaws: list[tuple[str, Any]] = field(default_factory=list)
    # A subtask: the response it asks about, with its span marked; and, on a parent whose assistance is
    # shown, its subtasks' results by the candidate they concern (None: the item as a whole).
    target: pages.Highlighted | None = None
    labels: dict[uuid.UUID, str] = field(default_factory=dict)
    # The revision page: the stored ratings (critique id → verdict, "yes"/"no"/"") and critiques.
    ratings: dict[str, tuple[str, str]] = field(default_factory=dict)
    written: dict[str, critiques.WrittenOnPage] = field(default_factory=dict)


def _item_slot(project: Project, view: AssignmentRead, *, revising: bool = False, **stored: Any) -> Slot:
    shown = view.assistance.critiques if view.assistance else []
    # Raters' critiques and flaws concern a comparison's responses (a subtask's are its parent's).
    marking = project.assistance != Assistance.never and view.item.kind == "comparison"
    return Slot(
        kind="item",
        view=view,
        form=pages.verdict_form(project, view, revising=revising),
        # Responses that show spans (critiques', or the flaws a rater marks) are cut into segments.
        highlights={c.id: pages.highlighted(c, shown) for c in view.item.candidates} if shown or marking else {},
        critique_box=marking,
        flaw_marking=marking,
        target=pages.target_highlight(view),
        labels={c.id: c.label for c in view.item.candidates},
        **stored,
    )


def _slot(project: Project, leased: service.Leased | None) -> Slot:
    if leased is None:
        return Slot(kind="done")
    return _item_slot(project, assignment_view(leased))


def _ahead_slot(project: Project, ahead: flows.Ahead) -> Slot:
    if ahead.stopped is not None:
        return Slot(kind="stopped", message=ahead.stopped)
    return _slot(project, ahead.leased)


AHEAD_LIMIT = 16  # a bound on the input only; how many leases a rater may hold is the service's rule


def _holding(ahead: str) -> set[uuid.UUID]:
    ids = set()
    for part in ahead.split(",")[:AHEAD_LIMIT]:
        try:
            ids.add(uuid.UUID(part))
        except ValueError:
            continue
    return ids


@router.get("/")
async def my_projects(request: Request, principal: PagePrincipal, session: SessionDep) -> Response:
    """The projects shared with me, with what I judged today and what is left (trainers: their exports)."""
    if principal.user.role == Role.trainer:
        return RedirectResponse("/trainer", status_code=303)
    rows = await overview.rater_projects(session, rater=principal.user)
    return render(request, "labeling/projects.html", {"rows": rows})


@router.get("/projects/{project_id}/label")
async def label_page(
    project_id: uuid.UUID, request: Request, rater: RaterPagePrincipal, session: SessionDep
) -> Response:
    """The labeling page. It leases nothing itself: its script asks for the queue by POST."""
    project = await projects.get_accessible(session, rater, project_id)
    context = {
        "project": project,
        "instructions_html": project.instructions_html,  # rendered once, when the instructions were saved
        "judged_today": await overview.judged_today(session, rater=rater.user, project=project),
        "slots": [],
        "messages": MESSAGES,
        "skip_reasons": pages.SKIP_REASONS,
    }
    return render(request, "labeling/label.html", context)


@router.post("/projects/{project_id}/label/queue")
async def label_queue(
    project_id: uuid.UUID, request: Request, rater: RaterPagePrincipal, session: SessionDep
) -> Response:
    """Lease the item on screen and the next one behind it (or show the ones already leased)."""
    project = await projects.get_accessible(session, rater, project_id)
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{project.id}/label", status_code=303)
    try:
        current = await flows.lease_next(session, project=project, rater=rater.user)
        slots = [_slot(project, current)]
        if current is not None:
            ahead = await flows.lease_next(session, project=project, rater=rater.user, exclude={current.assignment.id})
            slots.append(_slot(project, ahead))
    except AssayError as exc:
        await session.rollback()
        slots = [Slot(kind="stopped", message=exc.message)]
    context = {"project": project, "slots": slots, "messages": MESSAGES, "skip_reasons": pages.SKIP_REASONS}
    return render(request, "labeling/label.html", context, block="queue")


def _answer(
    request: Request, project: Project, slot: Slot, notice: str, feedback: rules.Feedback | None = None
) -> Response:
    """After a submit or skip: the next hidden item for htmx, or back to the page for a plain form.

    After a gold item with feedback on, the notice area holds the feedback (the page hides the
    next item until the rater has read it and pressed Continue)."""
    if not is_htmx(request):
        response = RedirectResponse(f"/projects/{project.id}/label", status_code=303)
        if feedback is not None:
            flash(response, " ".join(filter(None, (feedback.sentence, feedback.explanation))))
        return response
    context = {
        "project": project,
        "slots": [slot],
        "notice": notice,
        "feedback": feedback,
        "messages": MESSAGES,
        "skip_reasons": pages.SKIP_REASONS,
    }
    return render(request, "labeling/label.html", context, block="prefetched")


async def _inline_error(request: Request, session: AsyncSession, assignment_id: uuid.UUID, exc: AssayError) -> Response:
    """A refused verdict, shown in its item's error box (the page keeps everything the rater typed)."""
    await session.rollback()
    if not is_htmx(request):
        raise exc
    headers = {**(exc.headers or {}), "HX-Retarget": f"#error-{assignment_id}", "HX-Reswap": "innerHTML"}
    return render(
        request,
        "labeling/label.html",
        {"message": exc.message},
        status_code=exc.status_code,
        block="error",
        headers=headers,
    )


class VerdictForm:
    """The verdict fields of the rater page's form (the judge and the revise routes), with the
    critique ratings and critiques, whose field names carry the critique's or candidate's id."""

    def __init__(
        self,
        request: Request,
        verdict: Annotated[str | None, Form()] = None,
        ranking: Annotated[str | None, Form()] = None,
        strength: Annotated[str | None, Form()] = None,
        rationale: Annotated[str | None, Form()] = None,
        active_ms: Annotated[str | None, Form()] = None,
        answer: Annotated[str | None, Form(max_length=20_000)] = None,
        answer_number: Annotated[str | None, Form(max_length=64)] = None,
    ) -> None:
        self.fields = {
            "verdict": verdict,
            "ranking": ranking,
            "strength": strength,
            "rationale": rationale,
            "active_ms": active_ms,
            "answer": answer,
            "answer_number": answer_number,
        }
        self.request = request

    async def parse(self) -> JudgmentCreate:
        """As the API's body; an invalid form raises the page's refusal (AssayError)."""
        form = await self.request.form()  # parsed once already: starlette keeps it
        extras = pages.extras_from_form(form) | {"flaws": pages.flaws_from_form(form.getlist(pages.FLAW_FIELD))}
        return pages.verdict_from_form(**self.fields, extras=extras)


VerdictFormDep = Annotated[VerdictForm, Depends()]


@router.post("/assignments/{assignment_id}/judge")
async def judge(
    assignment_id: uuid.UUID,
    request: Request,
    rater: RaterPagePrincipal,
    session: SessionDep,
    form: VerdictFormDep,
    ahead: Annotated[str, Form()] = "",
) -> Response:
    """Store the verdict (a retry stores nothing new) and answer with the item after the next."""
    try:
        data = await form.parse()
        result, next_slot = await flows.judge_then_lease(
            session, assignment_id=assignment_id, rater=rater.user, data=data, ahead=_holding(ahead)
        )
    except AssayError as exc:
        return await _inline_error(request, session, assignment_id, exc)
    notice = result.refusal or (pages.SURPLUS if result.created and result.judgment.surplus else "")
    return _answer(request, result.project, _ahead_slot(result.project, next_slot), notice, result.feedback)


@router.post("/assignments/{assignment_id}/skip")
async def skip(
    assignment_id: uuid.UUID,
    request: Request,
    rater: RaterPagePrincipal,
    session: SessionDep,
    reason_code: Annotated[str | None, Form()] = None,
    reason: Annotated[str | None, Form()] = None,
    ahead: Annotated[str, Form()] = "",
) -> Response:
    """Hand the item back (it is not offered to me again), with the reason chosen if any, and answer
    with the item after the next."""
    try:
        data = pages.skip_from_form(reason_code=reason_code, reason=reason)
        assignment, next_slot = await flows.skip_then_lease(
            session,
            assignment_id=assignment_id,
            rater=rater.user,
            reason=data.reason,
            reason_code=data.reason_code,
            ahead=_holding(ahead),
        )
    except AssayError as exc:
        return await _inline_error(request, session, assignment_id, exc)
    project = await session.get_one(Project, assignment.project_id)
    return _answer(request, project, _ahead_slot(project, next_slot), "")


# --- taking a verdict back (labeling/revisions.py) ---------------------------------------------

NOTHING_TO_UNDO = "Nothing to take back: you have sent no verdict in this project that can still be revised."
Back = Literal["label", "recent"]


def _back_url(project_id: uuid.UUID, back: Back) -> str:
    return f"/projects/{project_id}/label" + ("/recent" if back == "recent" else "")


@router.get("/projects/{project_id}/label/undo")
async def undo_last(project_id: uuid.UUID, rater: RaterPagePrincipal, session: SessionDep) -> Response:
    """Backspace or Undo on the labeling page: the last verdict I sent, opened for revision."""
    project = await projects.get_accessible(session, rater, project_id)
    last = await revisions.recent(session, project=project, rater=rater.user, limit=1)
    if not last:
        response = RedirectResponse(f"/projects/{project.id}/label", status_code=303)
        flash(response, NOTHING_TO_UNDO)
        return response
    return RedirectResponse(f"/judgments/{last[0].judgment.id}/revise?back=label", status_code=303)


@router.get("/projects/{project_id}/label/recent")
async def recent_judgments(
    project_id: uuid.UUID, request: Request, rater: RaterPagePrincipal, session: SessionDep
) -> Response:
    """My judgments in this project that I can still revise, last sent first."""
    project = await projects.get_accessible(session, rater, project_id)
    rows = await revisions.recent(session, project=project, rater=rater.user)
    return render(request, "labeling/recent.html", {"project": project, "rows": rows, "describe": pages.describe})


async def _revise_page(
    request: Request,
    session: AsyncSession,
    rater: User,
    judgment_id: uuid.UUID,
    back: Back,
    *,
    error: str = "",
    status_code: int = 200,
) -> Response:
    judgment, project = await revisions.own_judgment(session, judgment_id=judgment_id, rater=rater)
    assignment = await session.get_one(Assignment, judgment.assignment_id)
    view = assignment_view(await service.load(session, assignment))
    ratings, written = await critiques.on_page(session, judgment)
    flaws = [(pages.flaw_field(f), f) for f in await critiques.marked_flaws(session, judgment.id)]
    context = {
        "project": project,
        "judgment": judgment,
        "slot": _item_slot(project, view, revising=True, ratings=ratings, written=written, flaws=flaws),
        "current": pages.form_values(judgment),
        "closes": revisions.window_closes(judgment, project),
        "open": revisions.revisable(judgment, project, datetime.now(UTC)),
        "feedback_shown": revisions.FEEDBACK_SHOWN,
        "back": back,
        "back_url": _back_url(project.id, back),
        "messages": MESSAGES,
        "skip_reasons": pages.SKIP_REASONS,
        "error": error,
    }
    return render(request, "labeling/revise.html", context, status_code=status_code)


@router.get("/judgments/{judgment_id}/revise")
async def revise_page(
    judgment_id: uuid.UUID,
    request: Request,
    rater: RaterPagePrincipal,
    session: SessionDep,
    back: Annotated[Back, Query()] = "label",
) -> Response:
    """One of my judgments with its verdict selected, to change and send as a new revision."""
    return await _revise_page(request, session, rater.user, judgment_id, back)


@router.post("/judgments/{judgment_id}/revise")
async def revise(
    judgment_id: uuid.UUID,
    request: Request,
    rater: RaterPagePrincipal,
    session: SessionDep,
    form: VerdictFormDep,
    back: Annotated[Back, Query()] = "label",
) -> Response:
    """Store the new verdict as a revision (the same service as PATCH /api/v1/judgments/{id})."""
    try:
        data = await form.parse()
        result = await revisions.revise(session, judgment_id=judgment_id, rater=rater.user, data=data)
    except AssayError as exc:
        await session.rollback()  # nothing of a refused revision is kept
        if exc.status_code == 404:
            raise
        await session.refresh(rater.user)
        return await _revise_page(
            request, session, rater.user, judgment_id, back, error=exc.message, status_code=exc.status_code
        )
    message = (
        f"Revised: revision {result.judgment.revision} of your verdict is stored and counts from now on."
        if result.created
        else "Nothing changed: that is the verdict already stored."
    )
    return done(request, _back_url(result.project.id, back), message)
