"""`assay token create`: 90 days unless --days or --never-expires says otherwise; `assay serve`'s proxy headers."""

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


async def test_serve_leaves_forwarded_headers_to_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn would believe X-Forwarded-For from 127.0.0.1; only ASSAY_TRUSTED_PROXIES may say whom to believe."""
    import uvicorn

    from server import cli, migrate

    started: dict[str, object] = {}
    monkeypatch.setenv("DATABASE_URL", "postgresql://nowhere/assay")  # serve sets it; undone after the test
    monkeypatch.setattr(cli, "_database_url", lambda: "postgresql://nowhere/assay")
    monkeypatch.setattr(migrate, "upgrade", lambda url: None)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options))
    result = await invoke("serve", "--port", "8123")
    assert result.exit_code == 0, result.output
    assert started["proxy_headers"] is False
