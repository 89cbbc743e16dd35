"""The page's sequences (server/labeling/flows.py) alone: what happens when leasing ahead fails."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import AssayError, Conflict
from server.labeling import flows, service
from server.labeling.schemas import JudgmentCreate
from server.models import Judgment
from tests.labeling.conftest import Setup


async def _judge_with_failing_lease(
    session: AsyncSession, setup: Setup, monkeypatch: pytest.MonkeyPatch, error: AssayError
) -> tuple[service.Submitted, flows.Ahead]:
    rater = setup.raters[0]
    leased = await flows.lease_next(session, project=setup.project, rater=rater)
    assert leased is not None
    await session.commit()

    async def refuse(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(service, "next_assignment", refuse)
    data = JudgmentCreate(choice=leased.candidates[0].id)
    return await flows.judge_then_lease(
        session, assignment_id=leased.assignment.id, rater=rater, data=data, ahead=(leased.assignment.id,)
    )


async def _stored(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Judgment)) or 0


class TestLeasingAheadFails:
    async def test_a_refusal_stops_the_page_and_keeps_the_verdict(self, make_setup, session, monkeypatch) -> None:
        setup = await make_setup(n_items=3)
        refusal = Conflict("This project is paused; nothing new is served until an admin resumes it.")
        result, ahead = await _judge_with_failing_lease(session, setup, monkeypatch, refusal)
        assert result.created
        assert ahead == flows.Ahead(leased=None, stopped=refusal.message)
        assert await _stored(session) == 1

    async def test_a_server_failure_is_raised_and_the_verdict_is_kept(self, make_setup, session, monkeypatch) -> None:
        setup = await make_setup(n_items=3)
        outage = AssayError("The database is not answering; try again in a few seconds.", status_code=503)
        with pytest.raises(AssayError) as raised:
            await _judge_with_failing_lease(session, setup, monkeypatch, outage)
        assert raised.value is outage
        await session.rollback()
        assert await _stored(session) == 1
