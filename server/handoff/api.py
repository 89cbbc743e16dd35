"""The hand-off report over JSON (admins)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from server.auth.deps import AdminPrincipal
from server.db import SessionDep
from server.handoff import service, threshold
from server.handoff.schemas import HandoffReport
from server.projects import service as projects

router = APIRouter(tags=["hand-off"])

Savings = Annotated[
    float,
    Query(
        ge=0.0,
        le=threshold.MAX_SAVINGS,
        allow_inf_nan=False,
        description="The goal for the share of items kept from humans, for the suggested threshold (0 to 0.95).",
    ),
]
Budget = Annotated[
    float,
    Query(
        ge=0.0,
        le=threshold.MAX_BUDGET,
        allow_inf_nan=False,
        description="The label accuracy the suggested threshold may cost against all-human labeling (0 to 0.2).",
    ),
]

Bound = Annotated[
    threshold.Bound,
    Query(
        description="Within budget by the estimated cost (estimate), or by the top of its 95% interval (upper): "
        "safer where the budget binds, but it keeps high thresholds while the interval is wide (docs/BENCHMARKS.md)."
    ),
]


@router.get("/projects/{project_id}/handoff-report", response_model=HandoffReport)
async def handoff_report(
    project_id: uuid.UUID,
    admin: AdminPrincipal,
    session: SessionDep,
    savings: Savings = threshold.SAVINGS,
    budget: Budget = threshold.BUDGET,
    bound: Bound = "estimate",
) -> object:
    """Items the model judges resolved, the human judgments that saved, how often the models agree with the
    humans on spot checks and by confidence (95% Wilson intervals), what each threshold would cost, and the
    threshold suggested to keep `savings` of the items from humans within `budget` of accuracy."""
    project = await projects.get_accessible(session, admin, project_id)
    return await service.handoff_report(session, project, savings=savings, budget=budget, bound=bound)
