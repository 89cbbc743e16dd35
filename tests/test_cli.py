"""The `assay` command on the server host: accounts and tokens."""

import asyncio

import pytest
from click.testing import Result
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from server.cli import app
from server.config import settings

runner = CliRunner()


@pytest.fixture
def cli_database(database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "database_url", database_url)


async def invoke(*args: str) -> Result:
    """Run the CLI in a thread: it starts its own event loop, as it does on a server host."""
    return await asyncio.to_thread(runner.invoke, app, list(args))


@pytest.mark.usefixtures("cli_database")
class TestUserCreate:
    async def test_creates_account(self) -> None:
        result = await invoke(
            "user", "create", "--email", "cli@example.com", "--password", "long enough", "--role", "trainer"
        )
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Created trainer cli@example.com (")

    async def test_duplicate_email(self) -> None:
        args = ["user", "create", "--email", "dup@example.com", "--password", "long enough"]
        await invoke(*args)
        result = await invoke(*args)
        assert result.exit_code == 1
        assert "A user with email dup@example.com already exists." in result.output

    async def test_unknown_role(self) -> None:
        result = await invoke(
            "user", "create", "--email", "r@example.com", "--password", "long enough", "--role", "boss"
        )
        assert result.exit_code == 2
        assert "role must be admin, rater or trainer; got 'boss'." in result.output

    async def test_short_password(self) -> None:
        result = await invoke("user", "create", "--email", "s@example.com", "--password", "short")
        assert result.exit_code == 2
        assert "password: String should have at least 8 characters" in result.output


@pytest.mark.usefixtures("cli_database")
class TestTokenCreate:
    async def test_prints_token_once(self) -> None:
        await invoke("user", "create", "--email", "t@example.com", "--password", "long enough", "--role", "trainer")
        result = await invoke("token", "create", "--email", "t@example.com", "--scopes", "export:read")
        assert result.exit_code == 0, result.output
        assert result.output.strip().startswith("assay_pat_")

    async def test_scope_the_role_cannot_hold(self) -> None:
        await invoke("user", "create", "--email", "u@example.com", "--password", "long enough")
        result = await invoke("token", "create", "--email", "u@example.com", "--scopes", "admin")
        assert result.exit_code == 1
        assert "A rater cannot hold the scope(s) admin" in result.output

    async def test_unknown_scope(self) -> None:
        result = await invoke("token", "create", "--email", "x@example.com", "--scopes", "everything")
        assert result.exit_code == 2
        assert "Unknown scope" in result.output
