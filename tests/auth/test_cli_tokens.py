"""`assay token create`: 90 days unless --days or --never-expires says otherwise."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import ApiToken
from tests.test_cli import cli_database, invoke

__all__ = ["cli_database"]


@pytest.mark.usefixtures("cli_database")
@pytest.mark.parametrize(("options", "days"), [((), 90), (("--days", "7"), 7), (("--never-expires",), None)])
async def test_expiry(session: AsyncSession, options: tuple[str, ...], days: int | None) -> None:
    await invoke("user", "create", "--email", "t@example.com", "--password", "long enough", "--role", "trainer")
    result = await invoke("token", "create", "--email", "t@example.com", "--scopes", "export:read", *options)
    assert result.exit_code == 0, result.output
    expires = await session.scalar(select(ApiToken.expires_at))
    if days is None:
        assert expires is None
    else:
        assert expires is not None
        assert abs((expires - datetime.now(UTC)) - timedelta(days=days)) < timedelta(minutes=5)


@pytest.mark.usefixtures("cli_database")
async def test_days_and_never_together_are_refused() -> None:
    result = await invoke(
        "token", "create", "--email", "t@example.com", "--scopes", "export:read", "--days", "3", "--never-expires"
    )
    assert result.exit_code == 2
    assert "Give --days or --never-expires, not both." in result.output
