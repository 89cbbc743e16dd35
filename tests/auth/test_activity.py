"""Last use of tokens and sessions: written off the request's transaction, never waiting (issue 7
defect 10), at most once a minute; sessions end after `session_idle_hours` without a request."""

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.auth import service as auth
from server.config import settings
from server.models import ApiToken, Role, Scope, UserSession
from tests.factories import (
    PASSWORD,
    bearer,
    create_project,
    create_token,
    create_user,
    import_items,
    native_items,
)

ME = "/api/v1/auth/me"
EXPIRED = "Your session has expired; log in again."


async def blocked_by(engine: AsyncEngine, pid: int, request: "asyncio.Task[Any]") -> bool:
    """Whether `request` ends up waiting for a lock held by backend `pid` before it finishes."""
    async with engine.connect() as watcher:
        while not request.done():
            waiting = await watcher.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"), {"pid": pid}
            )
            if waiting:
                return True
            await asyncio.sleep(0.01)
    return False


async def while_row_is_held(
    engine: AsyncEngine, statement: Any, request: Awaitable[httpx.Response]
) -> tuple[bool, httpx.Response]:
    """Run `request` while another transaction has written a row (`statement`) and not committed."""
    async with engine.connect() as holder:
        await holder.begin()
        await holder.execute(statement)
        pid = await holder.scalar(text("SELECT pg_backend_pid()"))
        task = asyncio.ensure_future(request)
        blocked = await blocked_by(engine, pid, task)
        await holder.rollback()  # lets a blocked request finish, so the test fails instead of hanging
    return blocked, await task


async def session_login(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post("/api/v1/auth/session", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    return str(response.json()["csrf_token"])


async def age_sessions(session: AsyncSession, idle: timedelta) -> None:
    await session.execute(update(UserSession).values(last_seen_at=func.now() - idle))
    await session.commit()


class TestTokenLastUse:
    async def test_a_transaction_holding_the_token_row_does_not_block_other_requests_with_it(
        self, client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
    ) -> None:
        secret = await create_token(session, await create_user(session, role=Role.trainer), Scope.export_read)
        # As a long upload with this token did before: it wrote last_used_at and has not committed.
        hold = update(ApiToken).values(last_used_at=func.now())
        blocked, response = await while_row_is_held(engine, hold, client.get(ME, headers=bearer(secret)))
        assert not blocked
        assert response.status_code == 200

    async def test_the_request_transaction_leaves_the_token_row_unlocked(
        self, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        secret = await create_token(session, await create_user(session, role=Role.trainer), Scope.export_read)
        async with sessionmaker() as request_session:  # a request's transaction, still open
            principal = await auth.principal_for_token(request_session, secret)
            async with engine.connect() as other:
                # Raises LockNotAvailable if the request's transaction had written the row.
                locked = await other.scalar(
                    select(ApiToken.id).where(ApiToken.id == principal.token.id).with_for_update(nowait=True)  # type: ignore[union-attr]
                )
                await other.rollback()
            assert locked == principal.token.id  # type: ignore[union-attr]

    async def test_written_after_the_request_at_most_once_a_minute(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        secret = await create_token(session, await create_user(session, role=Role.trainer), Scope.export_read)
        assert (await client.get(ME, headers=bearer(secret))).status_code == 200
        first = await session.scalar(select(ApiToken.last_used_at))
        assert first is not None
        await client.get(ME, headers=bearer(secret))
        assert await session.scalar(select(ApiToken.last_used_at)) == first
        await session.execute(update(ApiToken).values(last_used_at=func.now() - timedelta(minutes=2)))
        await session.commit()
        await client.get(ME, headers=bearer(secret))
        assert await session.scalar(select(ApiToken.last_used_at > func.now() - timedelta(seconds=30)))


class TestSessionActivity:
    async def test_idle_for_longer_than_the_limit_ends_the_session(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session)
        await session_login(client, user.email)
        await age_sessions(session, timedelta(hours=8, minutes=1))
        response = await client.get(ME)
        assert response.status_code == 401
        assert response.json()["detail"] == EXPIRED
        page = await client.get("/")
        assert (page.status_code, page.headers["location"]) == (303, "/login")

    async def test_a_request_within_the_limit_keeps_it_alive(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session)
        await session_login(client, user.email)
        await age_sessions(session, timedelta(hours=7, minutes=59))
        assert (await client.get(ME)).status_code == 200
        assert await session.scalar(select(UserSession.last_seen_at > func.now() - timedelta(seconds=30)))

    async def test_the_limit_is_a_setting(
        self, client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "session_idle_hours", 1)
        user = await create_user(session)
        await session_login(client, user.email)
        await age_sessions(session, timedelta(minutes=61))
        assert (await client.get(ME)).status_code == 401

    async def test_a_rater_pages_heartbeat_counts_as_activity(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, rater = await create_user(session, role=Role.admin), await create_user(session)
        project = await create_project(session, admin, members=(rater,))
        await import_items(session, project, admin, native_items(2))
        csrf = await session_login(client, rater.email)
        leased = await client.post(f"/api/v1/projects/{project.id}/assignments/next", headers={"X-CSRF-Token": csrf})
        assert leased.status_code == 200
        await age_sessions(session, timedelta(hours=7, minutes=59))
        beat = await client.post(f"/api/v1/assignments/{leased.json()['id']}/heartbeat", headers={"X-CSRF-Token": csrf})
        assert beat.status_code == 200
        assert await session.scalar(select(UserSession.last_seen_at > func.now() - timedelta(seconds=30)))

    async def test_a_transaction_holding_the_session_row_does_not_block_requests(
        self, client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
    ) -> None:
        user = await create_user(session)
        await session_login(client, user.email)
        await age_sessions(session, timedelta(minutes=5))
        hold = update(UserSession).values(last_seen_at=func.now())
        blocked, response = await while_row_is_held(engine, hold, client.get(ME))
        assert not blocked
        assert response.status_code == 200
