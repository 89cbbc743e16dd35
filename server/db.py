"""Engine, sessions and the declarative base.

One AsyncSession per request, committed once at the boundary before the response
is sent, rolled back on error. Services only flush.
"""

import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, ClassVar

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from server.config import settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True)}


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime | None] = mapped_column(onupdate=func.now())


def async_url(url: str) -> str:
    """Point a postgres:// URL at the asyncpg driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


class DatabaseUnreachable(Exception):
    """A new connection could not be opened: the server is down, starting, full or not answering in time.

    The driver raises these as plain OSError, TimeoutError or its own exceptions, which nothing else
    would tell apart from other faults; `make_engine` re-raises them as this (cause kept), which the
    app answers with 503 and Retry-After (`server/errors.py:database_unavailable`)."""


def _connect_or_unreachable(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception as exc:
        raise DatabaseUnreachable(f"cannot connect to the database ({type(exc).__name__})") from exc


_clock = time.monotonic  # tests move it on


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check a pooled connection before use when it sat idle for more than `idle_seconds`.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: one round trip per transaction, about
    0.2 ms of the server's CPU and 0.1 ms of PostgreSQL's each (docs/BENCHMARKS.md, "Before and
    after, a third time"), on every rater request. A connection handed back a moment ago was alive
    a moment ago; one that waited in the pool (an idle server, the minutes of a restart) is
    checked. A connection broken in between is still noticed: its error is a disconnect, which
    answers that request 503 (errors.py) and makes the pool replace every connection opened
    before it (SQLAlchemy's pool invalidation).
    """
    sync = engine.sync_engine

    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["assay_idle_since"] = _clock()

    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("assay_idle_since", None)  # absent: opened just now
        if since is None or _clock() - since <= idle_seconds:
            return
        try:
            alive = sync.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("a pooled connection did not answer its ping") from exc
        if not alive:
            raise DisconnectionError("a pooled connection did not answer its ping")

    event.listen(sync.pool, "checkin", checked_in)
    event.listen(sync.pool, "checkout", checked_out)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    ping = kwargs.pop("pool_pre_ping", settings.db_pool_pre_ping)
    idle_seconds = kwargs.pop("ping_idle_seconds", settings.db_pool_ping_idle_seconds)
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        # A database that went away (restart, failover) is noticed when a connection is checked out,
        # not by the request that uses it: `_ping_when_idle` below, or every checkout with 0 seconds.
        "pool_pre_ping": ping and idle_seconds == 0,
        # Waiting longer for a pooled connection (or to open one) only queues more requests: past
        # these a request is answered 503 with Retry-After (server/errors.py:database_unavailable).
        "pool_timeout": settings.db_pool_timeout,
        # Statement errors (and their logged tracebacks) carry the statement but never its values:
        # those are user data.
        "hide_parameters": True,
        # asyncpg's own statement cache is what makes repeated hot statements cheap.
        "connect_args": {"server_settings": {"application_name": "assay"}, "timeout": settings.db_connect_timeout},
    }
    options.update(kwargs)
    engine = create_async_engine(async_url(url), **options)
    event.listen(engine.sync_engine, "do_connect", _connect_or_unreachable)
    if ping and idle_seconds > 0:
        _ping_when_idle(engine, idle_seconds)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit before the response goes out, roll back on error."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
