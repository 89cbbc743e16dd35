"""Secrets and deployment (issue 8, item 7): the secret key's rules, the development warning, the
compose file's required values and TLS front, and the demo's separate passwords."""

import asyncio
import io
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import ValidationError
from rich.console import Console
from starlette.testclient import TestClient

from server import cli
from server.app import create_app
from server.config import DEV_SECRET, Settings, settings
from server.demo import DEMO_RATER

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
LOGIN = "/api/v1/auth/session"


class TestSecretKey:
    def test_production_refuses_the_development_secret(self) -> None:
        with pytest.raises(ValidationError, match="ASSAY_SECRET_KEY is still the public development default"):
            Settings(_env_file=None, environment="production", secret_key=DEV_SECRET)  # type: ignore[call-arg]

    @pytest.mark.parametrize("secret", ["x", "a-31-character-secret-is-short!"])
    def test_production_refuses_a_short_secret(self, secret: str) -> None:
        message = f"ASSAY_SECRET_KEY has {len(secret)} characters; production needs at least 32"
        with pytest.raises(ValidationError, match=message):
            Settings(_env_file=None, environment="production", secret_key=secret)  # type: ignore[call-arg]

    def test_production_accepts_32_characters(self) -> None:
        key = "k" * 32
        assert Settings(_env_file=None, environment="production", secret_key=key).secret_key == key  # type: ignore[call-arg]

    def test_the_development_secret_is_announced_at_start(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="assay"), TestClient(create_app(database_url=database_url)):
            pass
        assert "ASSAY_SECRET_KEY is not set: this server uses the public development secret" in caplog.text

    def test_a_real_secret_starts_quietly(
        self, database_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "secret_key", "s" * 40)
        with caplog.at_level(logging.WARNING, logger="assay"), TestClient(create_app(database_url=database_url)):
            pass
        assert "development secret" not in caplog.text


class TestCompose:
    @pytest.mark.parametrize("name", ["POSTGRES_PASSWORD", "ASSAY_SECRET_KEY", "ASSAY_DOMAIN"])
    def test_secrets_and_domain_are_required_never_defaulted(self, name: str) -> None:
        uses = re.findall(r"\$\{" + name + r"(:?[-?=+])?", COMPOSE_TEXT)
        assert uses, f"{name} is not used"
        assert set(uses) == {":?"}, f"{name} must be written ${{{name}:?message}} everywhere"

    def test_the_server_is_reached_through_tls_only(self) -> None:
        services = COMPOSE["services"]
        server, tls = services["server"], services["tls"]
        assert all(str(port).startswith("127.0.0.1:") for port in server["ports"])
        assert "443:443" in tls["ports"]
        assert server["environment"]["ASSAY_ENVIRONMENT"] == "production"
        assert "ASSAY_COOKIE_SECURE" not in server["environment"]
        proxy = tls["networks"]["internal"]["ipv4_address"]
        assert server["environment"]["ASSAY_TRUSTED_PROXIES"] == proxy
        assert "--to" in tls["command"]
        assert "server:8000" in tls["command"]


class TestDemo:
    async def test_the_demo_rater_has_its_own_password(
        self, database_url: str, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ASSAY_ADMIN_PASSWORD", "the admin's password")
        output = io.StringIO()
        monkeypatch.setattr(cli, "console", Console(file=output, width=200))
        await asyncio.to_thread(cli._with_session, database_url, cli._bootstrap_demo)
        printed = re.search(rf"{re.escape(DEMO_RATER)} / (\S+)", output.getvalue())
        assert printed is not None, output.getvalue()
        rater_password = printed.group(1)
        assert rater_password != "the admin's password"
        admin = await client.post(LOGIN, json={"email": "admin@example.com", "password": "the admin's password"})
        assert admin.status_code == 200
        refused = await client.post(LOGIN, json={"email": DEMO_RATER, "password": "the admin's password"})
        assert refused.status_code == 401
        rater = await client.post(LOGIN, json={"email": DEMO_RATER, "password": rater_password})
        assert rater.status_code == 200
