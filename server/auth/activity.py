"""When an API token or a browser session was last used, written off the request's transaction.

A request never writes these timestamps in its own transaction: a long upload would hold the
token's row lock until it commits, and every other request with the same token would queue
behind it (issue 7, defect 10). Instead the request's dependency schedules a write that runs
after the response is sent, at most once a minute per token or session, in its own short
transaction on its own connection, and it skips the row when anyone holds it
(`FOR NO KEY UPDATE SKIP LOCKED`): it never waits, and a skipped write is made by a later request.
The request itself holds at most one connection at a time.

A session's `last_seen_at` is also its idle clock (`session_idle_hours`); writing it at most once
a minute makes an idle session end up to a minute late, never early.
"""

import logging
import uuid
from datetime import UTC, datetime, timedelta

from fastapi import BackgroundTasks
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Update

from server.models import ApiToken, UserSession

RESOLUTION = timedelta(minutes=1)
logger = logging.getLogger("assay.auth")


def due(last: datetime | None) -> bool:
    """Whether a timestamp is old enough to be written again."""
    return last is None or datetime.now(UTC) - last > RESOLUTION


def _token_touch(token_id: uuid.UUID) -> Update:
    stale = or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < func.now() - RESOLUTION)
    free = select(ApiToken.id).where(ApiToken.id == token_id, stale).with_for_update(key_share=True, skip_locked=True)
    return update(ApiToken).where(ApiToken.id.in_(free)).values(last_used_at=func.now())


def _session_touch(session_id: uuid.UUID) -> Update:
    stale = UserSession.last_seen_at < func.now() - RESOLUTION
    free = (
        select(UserSession.id)
        .where(UserSession.id == session_id, stale)
        .with_for_update(key_share=True, skip_locked=True)
    )
    return update(UserSession).where(UserSession.id.in_(free)).values(last_seen_at=func.now())


async def _run(engine: AsyncEngine, statement: Update) -> None:
    try:
        async with engine.begin() as connection:
            await connection.execute(statement)
    except DBAPIError as exc:  # a timestamp is not worth an error after the response; the next request retries
        logger.warning("could not record token or session activity: %s", exc.orig)


async def touch_token(engine: AsyncEngine, token_id: uuid.UUID) -> None:
    await _run(engine, _token_touch(token_id))


async def touch_session(engine: AsyncEngine, session_id: uuid.UUID) -> None:
    await _run(engine, _session_touch(session_id))


def remember_token(background: BackgroundTasks, engine: AsyncEngine, token: ApiToken) -> None:
    """After the response: `last_used_at = now()`, if the stored one is over a minute old."""
    if due(token.last_used_at):
        background.add_task(touch_token, engine, token.id)


def remember_session(background: BackgroundTasks, engine: AsyncEngine, user_session: UserSession) -> None:
    """After the response: `last_seen_at = now()`, if the stored one is over a minute old."""
    if due(user_session.last_seen_at):
        background.add_task(touch_session, engine, user_session.id)
