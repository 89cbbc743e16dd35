"""The rater loop over JSON."""

import uuid

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from server.auth.deps import RaterPrincipal
from server.critiques import service as critiques
from server.critiques.assistance import is_shown
from server.db import SessionDep
from server.errors import error_responses
from server.items import subtasks
from server.labeling import flows, revisions, service
from server.labeling.schemas import (
    AssignmentAssistance,
    AssignmentRead,
    CandidateView,
    GoldFeedbackRead,
    ItemView,
    JudgmentCreate,
    JudgmentRead,
    JudgmentRefusal,
    LeaseRead,
    SkipCreate,
    SubtaskResultView,
    SubtaskTarget,
)

router = APIRouter(tags=["labeling"])
LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def assignment_view(leased: service.Leased) -> AssignmentRead:
    """An assignment with its item, candidates in the order this rater is shown them, and the
    critiques it shows when (and only when) it is assisted."""
    a, item = leased.assignment, leased.item
    shown = is_shown(a)
    return AssignmentRead(
        id=a.id,
        project_id=a.project_id,
        status=a.status,
        leased_at=a.leased_at,
        expires_at=a.expires_at,
        item=ItemView(
            id=item.id,
            external_id=item.external_id,
            prompt=item.prompt,
            candidates=[
                CandidateView(id=c.id, label=LABELS[i % 26], text=c.text, messages=c.messages)
                for i, c in enumerate(leased.candidates)
            ],
            kind=item.kind,
            question=item.question,
            scale=[item.scale_min, item.scale_max]
            if item.scale_min is not None and item.scale_max is not None
            else None,
            candidate=_target(leased),
        ),
        assistance_shown=shown,
        assistance=AssignmentAssistance(
            critiques=[critiques.view(c) for c in leased.critiques],
            subtasks=[subtask_view(r) for r in leased.subtasks],
        )
        if shown
        else None,
    )


def _target(leased: service.Leased) -> SubtaskTarget | None:
    target, item = leased.target, leased.item
    if target is None:
        return None
    span = [item.span_start, item.span_end] if item.span_start is not None and item.span_end is not None else None
    return SubtaskTarget(id=target.id, text=target.text, messages=target.messages, span=span, message=item.span_message)


def subtask_view(r: subtasks.SubtaskResult) -> SubtaskResultView:
    return SubtaskResultView(
        item_id=r.item.id,
        kind=r.item.kind,
        question=r.item.question,
        answer=r.result.answer,
        agreement=r.result.agreement,
        answers=r.result.count,
        rationales=r.rationales,
        candidate_id=r.candidate_id,
        span=r.span,
    )


@router.post(
    "/projects/{project_id}/assignments/next",
    response_model=AssignmentRead,
    responses={**error_responses(409), 204: {"description": "Nothing is left for this rater."}},
)
async def next_assignment(project_id: uuid.UUID, rater: RaterPrincipal, session: SessionDep) -> object:
    """Lease the next item to judge (or return the lease you already hold); 204 when nothing is left."""
    leased = await flows.lease_next_in(session, project_id=project_id, principal=rater)
    if leased is None:
        return Response(status_code=204)
    return assignment_view(leased)


@router.post(
    "/assignments/{assignment_id}/judgment",
    response_model=JudgmentRead,
    status_code=201,
    responses={
        200: {"description": "A retry of the same verdict: the stored judgment, nothing new stored."},
        409: {
            "model": JudgmentRefusal,
            "description": "A different verdict than the stored one (which is returned under `judgment`), or a "
            "lease an admin ended (the verdict is stored, uncounted, and returned under `judgment`).",
        },
    },
)
async def submit_judgment(
    assignment_id: uuid.UUID, body: JudgmentCreate, rater: RaterPrincipal, session: SessionDep
) -> JSONResponse:
    """Submit a verdict; a retry of the same verdict returns the stored one (200) and stores nothing new."""
    result = await flows.judge(session, assignment_id=assignment_id, rater=rater.user, data=body)
    read = JudgmentRead.model_validate(result.judgment)
    if result.feedback is not None:
        f = result.feedback
        read.feedback = GoldFeedbackRead(matched=f.matched, message=f.sentence, explanation=f.explanation)
    payload = read.model_dump(mode="json")
    if result.refusal is not None:  # stored (this response commits it), but it does not count
        return JSONResponse({"detail": result.refusal, "judgment": payload}, status_code=409)
    return JSONResponse(payload, status_code=201 if result.created else 200)


@router.post("/assignments/{assignment_id}/skip", response_model=LeaseRead, responses=error_responses(409))
async def skip_assignment(
    assignment_id: uuid.UUID, rater: RaterPrincipal, session: SessionDep, body: SkipCreate | None = None
) -> object:
    """Hand the item back, optionally with a reason code and words; it will not be offered to you again."""
    return await service.skip(
        session,
        assignment_id=assignment_id,
        rater=rater.user,
        reason=body.reason if body else None,
        reason_code=body.reason_code if body else None,
    )


@router.post("/assignments/{assignment_id}/heartbeat", response_model=LeaseRead, responses=error_responses(409))
async def heartbeat(assignment_id: uuid.UUID, rater: RaterPrincipal, session: SessionDep) -> object:
    """Keep the lease alive while the rater is still working on the item."""
    return await service.heartbeat(session, assignment_id=assignment_id, rater=rater.user)


@router.patch(
    "/judgments/{judgment_id}",
    response_model=JudgmentRead,
    responses={
        409: {
            "description": "Not revisable: another rater's judgment, revision turned off in the project, "
            "the project's revision window has closed, or the rater was shown the item's known answer."
        },
    },
)
async def revise_judgment(
    judgment_id: uuid.UUID, body: JudgmentCreate, rater: RaterPrincipal, session: SessionDep
) -> object:
    """Replace your verdict with a new revision (same judgment id, `revision` counts up), within the
    project's `revision_window_minutes` of sending it. The stored verdict counts until then; sending
    it again changes nothing."""
    result = await revisions.revise(session, judgment_id=judgment_id, rater=rater.user, data=body)
    return result.judgment
