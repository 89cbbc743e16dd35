"""Input that used to answer 500: every one is now a 4xx with a sentence, and logs carry no request values.

The client here lets the app's own error handling answer (`raise_app_exceptions=False`), as a
real server would, so a fault shows as a 500 rather than as an exception in the test.
"""

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, Role, User
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items, next_item
from tests.web.admin import login_as
from tests.web.html import parse

NUL = "must not contain a NUL character (\\u0000)"


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


class World:
    def __init__(self, admin: User, project: Project, admin_token: str, rater_token: str) -> None:
        self.admin, self.project, self.admin_token, self.rater_token = admin, project, admin_token, rater_token

    @property
    def base(self) -> str:
        return f"/api/v1/projects/{self.project.id}"


@pytest.fixture
async def world(session: AsyncSession) -> World:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,), scale="4-point")
    await import_items(session, project, admin, native_items(3))
    return World(admin, project, await create_token(session, admin), await create_token(session, rater))


def detail(response: httpx.Response) -> Any:
    return response.json()["detail"]


class TestJudgments:
    async def leased(self, api: httpx.AsyncClient, world: World) -> tuple[str, str]:
        lease = (await next_item(api, world.project, world.rater_token)).json()
        return lease["id"], lease["item"]["candidates"][0]["id"]

    async def test_nul_in_rationale(self, api: httpx.AsyncClient, world: World) -> None:
        assignment, choice = await self.leased(api, world)
        response = await api.post(
            f"/api/v1/assignments/{assignment}/judgment",
            json={"choice": choice, "strength": 1, "rationale": "fine\x00"},
            headers=bearer(world.rater_token),
        )
        assert response.status_code == 422
        assert detail(response) == f"Invalid request: rationale: {NUL}"

    async def test_nul_and_huge_numbers_in_a_revision(self, api: httpx.AsyncClient, world: World) -> None:
        assignment, choice = await self.leased(api, world)
        body = {"choice": choice, "strength": 1}
        judged = await api.post(
            f"/api/v1/assignments/{assignment}/judgment", json=body, headers=bearer(world.rater_token)
        )
        url = f"/api/v1/judgments/{judged.json()['id']}"
        response = await api.patch(url, json=body | {"rationale": "x\x00"}, headers=bearer(world.rater_token))
        assert (response.status_code, detail(response)) == (422, f"Invalid request: rationale: {NUL}")
        response = await api.patch(url, json=body | {"strength": 10**30}, headers=bearer(world.rater_token))
        assert response.status_code == 422
        assert detail(response) == "Invalid request: strength: Input should be less than or equal to 1000"
        response = await api.patch("/api/v1/judgments/not-a-uuid", json=body, headers=bearer(world.rater_token))
        assert response.status_code == 422

    async def test_nul_in_skip_reason(self, api: httpx.AsyncClient, world: World) -> None:
        assignment, _ = await self.leased(api, world)
        response = await api.post(
            f"/api/v1/assignments/{assignment}/skip", json={"reason": "\x00"}, headers=bearer(world.rater_token)
        )
        assert response.status_code == 422
        assert detail(response) == f"Invalid request: reason: {NUL}"

    async def test_huge_strength(self, api: httpx.AsyncClient, world: World) -> None:
        assignment, choice = await self.leased(api, world)
        response = await api.post(
            f"/api/v1/assignments/{assignment}/judgment",
            json={"choice": choice, "strength": 2**70},
            headers=bearer(world.rater_token),
        )
        assert response.status_code == 422
        assert detail(response) == "Invalid request: strength: Input should be less than or equal to 1000"

    async def test_five_thousand_digit_active_ms(self, api: httpx.AsyncClient, world: World) -> None:
        assignment, choice = await self.leased(api, world)
        body = b'{"choice": "%s", "strength": 1, "active_ms": %s}' % (choice.encode(), b"9" * 5000)
        response = await api.post(
            f"/api/v1/assignments/{assignment}/judgment",
            content=body,
            headers={**bearer(world.rater_token), "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert detail(response) == "There was an error parsing the body"


class TestSettingsAndAccounts:
    @pytest.mark.parametrize(
        ("path", "body", "message"),
        [
            ("/api/v1/projects", {"name": "a\x00"}, f"Invalid request: name: {NUL}"),
            ("/api/v1/projects", {"name": "a", "instructions": "\x00"}, f"Invalid request: instructions: {NUL}"),
            (
                "/api/v1/users",
                {"email": "a@b.c", "password": "12345678", "role": "rater", "name": "\x00"},
                f"Invalid request: name: {NUL}",
            ),
            ("/api/v1/auth/session", {"email": "a\x00@b.c", "password": "x"}, f"Invalid request: email: {NUL}"),
        ],
    )
    async def test_refused(self, api: httpx.AsyncClient, world: World, path: str, body: Any, message: str) -> None:
        response = await api.post(path, json=body, headers=bearer(world.admin_token))
        assert response.status_code == 422
        assert detail(response) == message

    async def test_nan_gold_rate(self, api: httpx.AsyncClient, world: World) -> None:
        response = await api.post(
            "/api/v1/projects",
            content=b'{"name": "a", "gold_rate": NaN}',
            headers={**bearer(world.admin_token), "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert detail(response) == "Invalid request: gold_rate: Input should be a finite number"

    async def test_nul_in_token_name(self, api: httpx.AsyncClient, world: World) -> None:
        response = await api.post(
            f"/api/v1/users/{world.admin.id}/tokens",
            json={"name": "\x00", "scopes": ["admin"]},
            headers=bearer(world.admin_token),
        )
        assert response.status_code == 422
        assert detail(response) == f"Invalid request: name: {NUL}"

    async def test_null_setting_leaves_it_as_it_is(self, api: httpx.AsyncClient, world: World) -> None:
        response = await api.patch(
            world.base, json={"name": None, "instructions": None}, headers=bearer(world.admin_token)
        )
        assert response.status_code == 200
        assert response.json()["name"] == world.project.name


class TestPageForms:
    async def test_nul_in_a_settings_form(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        response = await client.post(
            "/admin/projects",
            data={
                "name": "a\x00",
                "scale": "binary",
                "rationale": "optional",
                "overlap": "1",
                "lease_seconds": "900",
                "csrf_token": csrf,
            },
        )
        assert response.status_code == 422
        assert parse(response.text).by_id("f-name-error").text == "Name must not contain a NUL character."


class TestUploads:
    async def upload(self, api: httpx.AsyncClient, world: World, **fields: str) -> httpx.Response:
        content = b'{"prompt": "new", "responses": [{"text": "a"}, {"text": "b"}]}\n'
        return await api.post(
            f"{world.base}/batches",
            files={"file": ("a.jsonl", content)},
            data=fields,
            headers=bearer(world.admin_token),
        )

    async def test_huge_priority(self, api: httpx.AsyncClient, world: World) -> None:
        response = await self.upload(api, world, priority="9" * 5000)
        assert response.status_code == 422
        assert detail(response) == (
            f"priority must be a whole number from -1,000,000 to 1,000,000; got {'9' * 40!r}… (5,000 characters)."
        )

    async def test_priority_in_another_script(self, api: httpx.AsyncClient, world: World) -> None:
        response = await self.upload(api, world, priority="²")
        assert response.status_code == 422

    async def test_long_name(self, api: httpx.AsyncClient, world: World) -> None:
        response = await self.upload(api, world, name="n" * 301)
        assert response.status_code == 422
        assert detail(response) == "name is 301 characters long; a batch name may be at most 300 characters."

    async def test_nul_in_file(self, api: httpx.AsyncClient, world: World) -> None:
        response = await api.post(
            f"{world.base}/batches",
            files={"file": ("a.csv", b"prompt,response_1,response_2\nQ\x00,a,b\n")},
            headers=bearer(world.admin_token),
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "line": 1,
                "field": "prompt",
                "message": "prompt contains a NUL character (\\u0000), which cannot be stored; remove it.",
            }
        ]

    async def test_json_items_nested_deeper_than_255(self, api: httpx.AsyncClient, world: World) -> None:
        metadata = b'{"a": ' * 300 + b"1" + b"}" * 300
        body = b'{"items": [{"prompt": "p", "responses": [{"text": "a"}, {"text": "b"}], "metadata": %s}]}' % metadata
        response = await api.post(
            f"{world.base}/batches",
            content=body,
            headers={**bearer(world.admin_token), "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert detail(response) == "items[0] is nested too deeply to store; flatten its metadata."

    async def test_jsonl_nested_deeper_than_255(self, api: httpx.AsyncClient, world: World) -> None:
        line = b'{"prompt": "p", "responses": [{"text": "a"}, {"text": "b"}], "metadata": '
        line += b'{"a": ' * 300 + b"1" + b"}" * 301
        response = await api.post(
            f"{world.base}/batches", files={"file": ("a.jsonl", line + b"\n")}, headers=bearer(world.admin_token)
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["message"] == "metadata is nested more than 32 levels deep; flatten it."


COMPARE = {
    "n_train": 40,
    "n_validation": 10,
    "labels_agree": 0.9,
    "weighted": {"accuracy": 0.6, "log_loss": 0.7},
    "majority": {"accuracy": 0.5, "log_loss": 0.7},
}


class TestRewardModels:
    def report(self, **metrics: Any) -> dict[str, Any]:
        base = {"accuracy": 0.6, "log_loss": 0.6, "n_pairs": 10, "training_seconds": 1.0}
        return {"features": "f", "cursor_to": "c", "metrics": base | metrics}

    async def test_huge_version(self, api: httpx.AsyncClient, world: World) -> None:
        response = await api.get(f"{world.base}/reward-models/99999999999", headers=bearer(world.admin_token))
        assert response.status_code == 422
        assert detail(response) == "Invalid request: path.version: Input should be less than or equal to 2147483647"

    @pytest.mark.parametrize(
        ("metrics", "message"),
        [
            (
                {"n_judgments": "lots"},
                "metrics.n_judgments: Input should be a valid integer, unable to parse string as an integer",
            ),
            ({"accuracy": 1.5}, "metrics.accuracy: Input should be less than or equal to 1"),
            (
                {"extra": [1, 2]},
                "metrics: Value error, metric extra must be a number, text, true/false or null, not a list or object",
            ),
            ({"note": "x\x00"}, f"metrics: {NUL}"),
            ({"n" * 101: 1}, "metrics: Value error, metric names are 1 to 100 letters, digits, '_', '.' or '-'"),
            (
                {"compare": COMPARE | {"majority": {"accuracy": 1.5, "log_loss": 0.7}}},
                "metrics.compare.majority.accuracy: Input should be less than or equal to 1",
            ),
            (
                {"compare": COMPARE | {"judgments": {"accuracy": 0.5, "log_loss": 0.7}}},
                "metrics.compare.judgments: Extra inputs are not permitted",
            ),
            (
                {"compare": {k: v for k, v in COMPARE.items() if k != "majority"}},
                "metrics.compare.majority: Field required",
            ),
        ],
    )
    async def test_metrics_checked(
        self, api: httpx.AsyncClient, world: World, metrics: dict[str, Any], message: str
    ) -> None:
        response = await api.post(
            f"{world.base}/reward-models", json=self.report(**metrics), headers=bearer(world.admin_token)
        )
        assert response.status_code == 422
        assert detail(response) == f"Invalid request: {message}"

    async def test_nan_in_metrics(self, api: httpx.AsyncClient, world: World) -> None:
        body = b'{"features": "f", "cursor_to": "c", "metrics": {"accuracy": NaN, "log_loss": 1, "n_pairs": 1, '
        body += b'"training_seconds": 1, "other": Infinity}}'
        response = await api.post(
            f"{world.base}/reward-models",
            content=body,
            headers={**bearer(world.admin_token), "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert detail(response).startswith("Invalid request: metrics.accuracy: Input should be a finite number")


class TestDatabaseRefusals:
    async def test_a_value_the_database_refuses_is_a_422(
        self, api: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Where no schema bounds a value (here a cursor's text), the database's refusal still is the client's."""
        import base64

        cursor = base64.urlsafe_b64encode(b"o1:\x00secret-value").decode()
        with caplog.at_level(logging.INFO):
            response = await api.get(f"{world.base}/open-items?after={cursor}", headers=bearer(world.admin_token))
        assert response.status_code == 422
        assert (
            detail(response) == "The request holds a NUL character (\\u0000) or bytes that are not UTF-8, which "
            "cannot be stored; remove them."
        )
        assert "secret-value" not in caplog.text

    async def test_statement_errors_hide_parameters(self, session: AsyncSession) -> None:
        with pytest.raises(DBAPIError) as raised:
            await session.execute(text("SELECT 1 / :zero"), {"zero": 0})
        assert "[SQL parameters hidden due to hide_parameters=True]" in str(raised.value)


class TestUnhandledErrors:
    async def test_logged_without_the_message_and_answered_500(self, caplog: pytest.LogCaptureFixture) -> None:
        from server.web.errors import UnhandledErrors

        secret = "-".join(("password", "hunter2"))  # a value from the request, not a literal in the code

        async def failing(scope: Any, receive: Any, send: Any) -> None:
            raise ValueError(secret)

        transport = httpx.ASGITransport(app=UnhandledErrors(failing), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            with caplog.at_level(logging.ERROR, logger="assay.errors"):
                response = await client.get("/api/v1/anything")
        assert response.status_code == 500
        assert response.json()["detail"].startswith("Something went wrong on our side (error ")
        assert "hunter2" not in caplog.text
        assert "builtins.ValueError (message withheld)" in caplog.text
        assert "test_bad_input.py" in caplog.text  # the frames are there


class TestFoundByFuzzing:
    """Cases tests/security/test_fuzz.py found: an explicit null in an update leaves the field as it is
    (as for projects), where it used to reach a NOT NULL column and answer 500."""

    async def test_null_account_fields(self, api: httpx.AsyncClient, world: World, session: AsyncSession) -> None:
        rater = await create_user(session)
        response = await api.patch(
            f"/api/v1/users/{rater.id}",
            json={"name": None, "role": None, "is_active": None, "password": None},
            headers=bearer(world.admin_token),
        )
        assert response.status_code == 200
        assert (response.json()["role"], response.json()["is_active"]) == ("rater", True)

    async def test_null_batch_fields(self, api: httpx.AsyncClient, world: World, session: AsyncSession) -> None:
        batch = await import_items(session, world.project, world.admin, native_items(2, prefix="steer"))
        response = await api.patch(
            f"/api/v1/batches/{batch}",
            json={"name": None, "status": None, "priority": None},
            headers=bearer(world.admin_token),
        )
        assert response.status_code == 200
        assert (response.json()["status"], response.json()["priority"]) == ("active", 0)

    async def test_body_not_utf8(self, api: httpx.AsyncClient, world: World) -> None:
        """Declared in the schema as 400 (FastAPI's answer to a body it cannot decode)."""
        response = await api.post(
            "/api/v1/projects",
            content=b"\x80\x81",
            headers={**bearer(world.admin_token), "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert detail(response) == "There was an error parsing the body"

    async def test_no_connection_free_is_a_503(self, session: AsyncSession, database_url: str) -> None:
        """A database that refuses connections (here a role allowed none: SQLSTATE 53300, as when
        max_connections is reached) answers 503 with Retry-After, not 500 (found by the fuzz suite
        on a busy shared server)."""
        import uuid

        from sqlalchemy.engine import make_url

        from server.app import create_app
        from server.db import make_engine, make_sessionmaker

        role = f"assay_none_{uuid.uuid4().hex[:8]}"
        await session.execute(text(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0'))
        await session.commit()
        engine = make_engine(make_url(database_url).set(username=role).render_as_string(hide_password=False))
        try:
            app = create_app(database_url="unused")
            app.state.engine, app.state.sessionmaker = engine, make_sessionmaker(engine)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                response = await client.get("/api/v1/auth/me", headers=bearer("assay_anything"))
        finally:
            await engine.dispose()
            await session.execute(text(f'DROP ROLE "{role}"'))
            await session.commit()
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert detail(response) == "The database is not answering at the moment; please try again in a few seconds."
