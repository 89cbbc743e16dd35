"""The model leaderboard over JSON: the ratings as a list, and the head-to-head matrix beside it."""

import uuid

from fastapi import APIRouter

from server.auth.deps import AdminPrincipal
from server.db import SessionDep
from server.leaderboard import service
from server.leaderboard.schemas import ModelRating, WinRateMatrix
from server.projects import service as projects
from server.quality.schemas import Fresh

router = APIRouter(tags=["leaderboard"])


@router.get("/projects/{project_id}/leaderboard", response_model=list[ModelRating])
async def leaderboard(
    project_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep, fresh: Fresh = False
) -> list[ModelRating]:
    """Models by Bradley-Terry rating, best first, with 95% intervals; empty when no two models met."""
    project = await projects.get_accessible(session, admin, project_id)
    board = await service.get(session, project, fresh=fresh)
    await session.commit()  # keeps a freshly computed figure
    return [ModelRating.model_validate(r) for r in board.ratings]


@router.get("/projects/{project_id}/leaderboard/matrix", response_model=WinRateMatrix)
async def matrix(
    project_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep, fresh: Fresh = False
) -> WinRateMatrix:
    """Win rates and battles between every two models, in the leaderboard's order, and why it is empty if so."""
    project = await projects.get_accessible(session, admin, project_id)
    board = await service.get(session, project, fresh=fresh)
    await session.commit()
    return WinRateMatrix(
        models=board.models,
        win_rate=board.win_rate,
        battles=board.battles,
        total_battles=board.total_battles,
        bootstrap=board.bootstrap,
        pseudo_wins=board.pseudo_wins,
        empty_reason=board.empty_reason,
        data_version=board.data_version,
        current=board.current,
        computed_at=board.computed_at,
    )
