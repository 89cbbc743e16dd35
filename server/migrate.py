"""Apply Alembic migrations from code (CLI, tests, container start)."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from server.config import settings

ROOT = Path(__file__).resolve().parent.parent


def resolve_database_url() -> str:
    """DATABASE_URL when set; otherwise start the embedded PostgreSQL and use it."""
    if settings.database_url:
        return settings.database_url
    from server.pgserver import start_embedded

    return start_embedded(settings.data_dir)


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate, then settle the export stamps (exports/identity.py): a database restored into a
    newly initialised cluster is ready for exports once `assay migrate` has run."""
    command.upgrade(alembic_config(url), revision)
    if revision == "head":
        asyncio.run(_settle(url))


async def _settle(url: str) -> None:
    from server.db import make_engine
    from server.exports.identity import settle

    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        await settle(engine)
    finally:
        await engine.dispose()
