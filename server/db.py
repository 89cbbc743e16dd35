"""Engine, sessions and the declarative base.

One AsyncSession per request, committed once at the boundary before the response
is sent, rolled back on error. Services only flush.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, ClassVar

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, func
from sqlalchemy.dialects.postgresql import JSONB
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


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        # A database that went away (restart, failover) is noticed when a connection is checked out,
        # not by the request that uses it; one round trip per checkout.
        "pool_pre_ping": settings.db_pool_pre_ping,
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
