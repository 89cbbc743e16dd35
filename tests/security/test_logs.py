"""Logs never carry a password, an API token or a session secret.

A whole scenario runs against the real server over HTTP (uvicorn in a thread): a failed and a
successful login (page and JSON), token creation, an upload, labeling, an export and logout,
with our loggers at DEBUG and uvicorn and SQLAlchemy at INFO (SQL statements with their
parameters). Then every captured record, formatted as an operator would see it, is searched
for each secret the scenario used.
"""

import logging
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import settings
from server.models import Role
from server.security import csrf_token_for
from tests.factories import PASSWORD, bearer, create_user, jsonl, native_items
from tests.web.conftest import NONCE

LEVELS = {
    "assay": logging.DEBUG,
    "server": logging.DEBUG,
    "uvicorn": logging.INFO,
    "uvicorn.error": logging.INFO,
    "uvicorn.access": logging.INFO,
    "sqlalchemy": logging.INFO,
}
WRONG_PASSWORD = "Tr0ub4dor&3-wrong-guess"
NEW_PASSWORD = "a-new-password-for-the-rater"


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # with exc_info, the traceback too


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Every record of the loggers above, at the levels above, whatever uvicorn configured."""
    handler = Captured()
    previous = {}
    for name, level in LEVELS.items():
        logger = logging.getLogger(name)
        previous[name] = logger.level
        logger.setLevel(level)
        logger.addHandler(handler)
    yield handler
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).removeHandler(handler)


async def page_login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    nonce = NONCE.search((await client.get("/login")).text)
    assert nonce is not None
    return await client.post("/login", data={"email": email, "password": password, "login_nonce": nonce.group(1)})


async def test_a_whole_scenario_logs_no_secret(live_server: str, session: AsyncSession, captured: Captured) -> None:
    admin = await create_user(session, role=Role.admin)
    secrets: dict[str, str] = {"password": PASSWORD, "wrong password": WRONG_PASSWORD, "new password": NEW_PASSWORD}
    async with httpx.AsyncClient(base_url=live_server) as browser, httpx.AsyncClient(base_url=live_server) as api:
        assert (await page_login(browser, admin.email, WRONG_PASSWORD)).status_code == 401
        assert (await page_login(browser, admin.email, PASSWORD)).status_code == 303
        secrets["page session"] = browser.cookies[settings.session_cookie]
        login = await api.post("/api/v1/auth/session", json={"email": admin.email, "password": PASSWORD})
        secrets["api session"] = api.cookies[settings.session_cookie]
        secrets["csrf token"] = csrf = login.json()["csrf_token"]
        assert csrf == csrf_token_for(secrets["api session"])
        write = {"X-CSRF-Token": csrf}

        rater = await api.post(
            "/api/v1/users", json={"email": "r@example.com", "password": PASSWORD, "role": "rater"}, headers=write
        )
        trainer = await api.post(
            "/api/v1/users", json={"email": "t@example.com", "password": PASSWORD, "role": "trainer"}, headers=write
        )
        await api.patch(f"/api/v1/users/{rater.json()['id']}", json={"password": NEW_PASSWORD}, headers=write)
        tokens = {
            "admin token": (admin.id, ["admin"]),
            "rater token": (rater.json()["id"], ["judgments:write"]),
            "trainer token": (trainer.json()["id"], ["export:read"]),
        }
        for name, (user_id, scopes) in tokens.items():
            created = await api.post(f"/api/v1/users/{user_id}/tokens", json={"scopes": scopes}, headers=write)
            assert created.status_code == 201
            secrets[name] = created.json()["token"]

        admin_api = bearer(secrets["admin token"])
        project = (await api.post("/api/v1/projects", json={"name": "Logs"}, headers=admin_api)).json()
        members = f"/api/v1/projects/{project['id']}/members"
        for user in (rater, trainer):
            await api.post(members, json={"user_id": user.json()["id"]}, headers=admin_api)
        upload = await api.post(
            f"/api/v1/projects/{project['id']}/batches",
            files={"file": ("items.jsonl", jsonl(native_items(3)))},
            headers=admin_api,
        )
        assert upload.status_code == 201, upload.text

        rater_api = bearer(secrets["rater token"])
        leased = await api.post(f"/api/v1/projects/{project['id']}/assignments/next", headers=rater_api)
        assignment = leased.json()
        await api.post(f"/api/v1/assignments/{assignment['id']}/heartbeat", headers=rater_api)
        choice = {"choice": assignment["item"]["candidates"][0]["id"]}
        judged = await api.post(f"/api/v1/assignments/{assignment['id']}/judgment", json=choice, headers=rater_api)
        assert judged.status_code == 201, judged.text

        export = await api.get(f"/api/v1/projects/{project['id']}/export", headers=bearer(secrets["trainer token"]))
        assert export.status_code == 200
        assert (await api.delete("/api/v1/auth/session", headers=write)).status_code == 204
        assert (await api.get("/api/v1/auth/me", headers=bearer("assay_pat_" + "x" * 43))).status_code == 401

    text = "\n".join(captured.lines)
    assert "INSERT INTO api_tokens" in text  # SQLAlchemy's statements were captured,
    assert "login refused" in text  # and our own records
    leaked = [name for name, secret in secrets.items() if secret in text]
    # A token's random part without its public prefix must not appear either.
    leaked += [name for name, secret in secrets.items() if name.endswith("token") and secret[16:] in text]
    assert leaked == []
