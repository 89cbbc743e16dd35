"""The users and tokens admin pages over plain HTTP: create accounts, reset passwords,
(de)activate, create tokens (secret shown once) and revoke them, last use."""

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.deps import CSRF_REFUSED
from server.models import ApiToken, AuditEvent, Role, User, UserSession
from tests.factories import PASSWORD, bearer, create_token, create_user
from tests.web.admin import htmx, login_as
from tests.web.conftest import page_login
from tests.web.html import parse

ADMINS_ONLY = "This page is for admins. Your account can label the projects shared with it."
from server.users.service import MODEL_PASSWORD, MODEL_ROLE, PASSWORD_NEEDED  # noqa: E402

NEW_USER = {"email": "cy@example.com", "name": "Cy", "role": "trainer", "password": "long enough pw"}


async def _audit(session: AsyncSession, action: str) -> int:
    return await session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)) or 0


class TestUserList:
    async def test_lists_accounts(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        rater = await create_user(session, email="ana@example.com")
        page = parse((await client.get("/admin/users")).text)
        rows = {
            tr.find("th").find("a").text: [td.text for td in tr.find_all("td")]
            for tr in page.find("tbody").find_all("tr")
        }
        assert rows[rater.email][:2] == ["rater", "Active"]
        assert rows[admin.email][0] == "admin"

    async def test_trainer_gets_403(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await login_as(client, session, Role.trainer)
        response = await client.get("/admin/users")
        assert response.status_code == 403
        assert parse(response.text).find("p", class_="lead").text == ADMINS_ONLY


class TestCreateUser:
    async def test_creates_and_goes_to_the_account(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        response = await client.post("/admin/users", data={**NEW_USER, "csrf_token": csrf})
        assert response.status_code == 303
        user = await session.scalar(select(User).where(User.email == "cy@example.com"))
        assert user is not None
        assert (user.role, user.name) == ("trainer", "Cy")
        assert response.headers["location"] == f"/admin/users/{user.id}"
        page = parse((await client.get(response.headers["location"])).text)
        assert page.by_id("flash").text == "Account cy@example.com created (trainer)."
        assert await _audit(session, "user.create") == 2  # the test's admin, then this one

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("email", "not-an-email", "Email must be an address like ana@example.com."),
            ("email", "", "Email must be an address like ana@example.com."),
            ("password", "short", "Password must be at least 8 characters."),
            ("role", "owner", "Role must be one of admin, rater or trainer."),
        ],
    )
    async def test_refusals_beside_their_field(
        self, client: httpx.AsyncClient, session: AsyncSession, field: str, value: str, message: str
    ) -> None:
        _, csrf = await login_as(client, session)
        response = await client.post("/admin/users", data={**NEW_USER, field: value, "csrf_token": csrf})
        assert response.status_code == 422
        page = parse(response.text)
        assert page.by_id(f"f-{field}-error").text == message
        assert page.by_id("f-password")["value"] == ""  # a typed password is never sent back

    async def test_a_model_judge_without_a_password(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        body = {"email": "judge@example.com", "role": "rater", "kind": "model", "password": "", "csrf_token": csrf}
        response = await client.post("/admin/users", data=body)
        assert response.status_code == 303
        user = await session.scalar(select(User).where(User.email == "judge@example.com"))
        assert user is not None
        assert (user.kind, user.password_hash) == ("model", None)
        listed = parse((await client.get("/admin/users")).text)
        assert "model" in [b.text for b in listed.find_all("span", class_="badge")]

    @pytest.mark.parametrize(
        ("body", "field", "message"),
        [
            ({"kind": "model", "role": "rater"}, "password", MODEL_PASSWORD),
            ({"kind": "model", "role": "trainer", "password": ""}, "kind", MODEL_ROLE),
            ({"password": ""}, "password", PASSWORD_NEEDED),
        ],
    )
    async def test_the_kinds_rules_beside_their_field(
        self, client: httpx.AsyncClient, session: AsyncSession, body: dict[str, str], field: str, message: str
    ) -> None:
        _, csrf = await login_as(client, session)
        response = await client.post("/admin/users", data={**NEW_USER, **body, "csrf_token": csrf})
        assert response.status_code == 422
        assert parse(response.text).by_id(f"f-{field}-error").text == message

    async def test_taken_email(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        await create_user(session, email="cy@example.com")
        response = await client.post("/admin/users", data={**NEW_USER, "email": "CY@example.com", "csrf_token": csrf})
        assert response.status_code == 422
        assert parse(response.text).by_id("f-email-error").text == "A user with email CY@example.com already exists."

    async def test_missing_csrf_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await login_as(client, session)
        response = await client.post("/admin/users", data=NEW_USER)
        assert response.status_code == 403
        assert parse(response.text).find("p", class_="lead").text == CSRF_REFUSED
        assert await session.scalar(select(User).where(User.email == "cy@example.com")) is None


class TestPassword:
    async def test_reset_ends_sessions_and_new_one_works(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        _, csrf = await login_as(client, session)
        rater = await create_user(session)
        async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as other:
            assert (await page_login(other, rater.email, PASSWORD)).status_code == 303
        response = await client.post(
            f"/admin/users/{rater.id}/password", data={"password": "brand new secret", "csrf_token": csrf}
        )
        assert response.status_code == 303
        sessions = await session.scalar(
            select(func.count()).select_from(UserSession).where(UserSession.user_id == rater.id)
        )
        assert sessions == 0
        async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as other:
            assert (await page_login(other, rater.email, "brand new secret")).status_code == 303

    async def test_too_short(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        rater = await create_user(session)
        response = await client.post(f"/admin/users/{rater.id}/password", data={"password": "abc", "csrf_token": csrf})
        assert response.status_code == 422
        assert parse(response.text).by_id("f-password-error").text == "Password must be at least 8 characters."


class TestActive:
    async def test_deactivate_and_reactivate(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        rater = await create_user(session)
        response = await client.post(f"/admin/users/{rater.id}/active", data={"active": "false", "csrf_token": csrf})
        assert response.status_code == 303
        await session.refresh(rater)
        assert rater.is_active is False
        page = parse((await client.get(f"/admin/users/{rater.id}")).text)
        assert page.by_id("flash").text == f"{rater.email} deactivated."
        assert page.find("h1").find("span", class_="badge").text == "Deactivated"
        await client.post(f"/admin/users/{rater.id}/active", data={"active": "true", "csrf_token": csrf})
        await session.refresh(rater)
        assert rater.is_active is True

    async def test_cannot_deactivate_yourself(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        response = await client.post(f"/admin/users/{admin.id}/active", data={"active": "false", "csrf_token": csrf})
        assert response.status_code == 422
        assert parse(response.text).find("p", class_="flash-error").text == (
            "You cannot deactivate your own account; another admin can."
        )
        await session.refresh(admin)
        assert admin.is_active is True


class TestTokens:
    async def test_created_token_is_shown_once_and_works(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        _, csrf = await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        response = await client.post(
            f"/admin/users/{trainer.id}/tokens",
            data={"name": "rm trainer", "scopes": ["export:read"], "expires_in_days": "30", "csrf_token": csrf},
            headers=htmx("tokens"),
        )
        assert response.status_code == 201
        assert "<html" not in response.text
        fragment = parse(response.text)
        secret = fragment.by_id("new-token")["value"]
        assert secret.startswith("assay_pat_")
        assert fragment.find("button", data_copy="new-token").text == "Copy"
        token = await session.scalar(select(ApiToken).where(ApiToken.user_id == trainer.id))
        assert token is not None
        assert (token.name, token.scopes, token.expires_at is not None) == ("rm trainer", ["export:read"], True)
        assert (await client.get("/api/v1/auth/me", headers=bearer(secret))).json()["email"] == trainer.email
        again = await client.get(f"/admin/users/{trainer.id}")
        assert secret not in again.text
        row = parse(again.text).by_id("tokens").find("tbody").find("tr")
        assert row.find("th").text == f"{token.prefix}… rm trainer"
        assert row.find_all("td")[3].text.endswith("UTC")  # last used, by the call above
        assert await _audit(session, "token.create") == 1

    @pytest.mark.parametrize(
        ("data", "field", "message"),
        [
            ({"name": "x"}, "scopes", "Choose at least one scope."),
            (
                {"scopes": ["export:read"], "expires_in_days": "0"},
                "expires_in_days",
                "Expiry in days must be at least 1.",
            ),
            (
                {"scopes": ["export:read"], "expires_in_days": "soon"},
                "expires_in_days",
                "Expiry in days must be a whole number.",
            ),
            ({"scopes": ["export:read"], "name": "n" * 201}, "name", "Name must be at most 200 characters."),
            (
                {"scopes": ["root"]},
                "scopes",
                "Scopes must be one of admin, items:write, judgments:write, export:read or reward_models:write.",
            ),
        ],
    )
    async def test_refusals_beside_their_field(
        self, client: httpx.AsyncClient, session: AsyncSession, data: dict[str, object], field: str, message: str
    ) -> None:
        _, csrf = await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        response = await client.post(
            f"/admin/users/{trainer.id}/tokens", data={**data, "csrf_token": csrf}, headers=htmx("tokens")
        )
        assert response.status_code == 422
        assert parse(response.text).by_id(f"f-{field}-error").text == message
        assert await session.scalar(select(func.count()).select_from(ApiToken)) == 0

    async def test_scope_the_role_cannot_hold(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        rater = await create_user(session)
        page = parse((await client.get(f"/admin/users/{rater.id}")).text)
        assert [i["value"] for i in page.find_all("input", name="scopes")] == ["judgments:write"]
        response = await client.post(
            f"/admin/users/{rater.id}/tokens",
            data={"scopes": ["export:read"], "csrf_token": csrf},
            headers=htmx("tokens"),
        )
        assert response.status_code == 422
        assert parse(response.text).find(class_="form-error").text == (
            "Not created: A rater cannot hold the scope(s) export:read; allowed for this role: judgments:write."
        )

    async def test_revoke(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        secret = await create_token(session, trainer)
        token = await session.scalar(select(ApiToken))
        assert token is not None
        response = await client.post(
            f"/admin/tokens/{token.id}/revoke", data={"csrf_token": csrf}, headers=htmx("tokens")
        )
        assert response.status_code == 200
        fragment = parse(response.text)
        assert fragment.find("p", class_="flash-success").text == f"Token {token.prefix}… revoked."
        assert fragment.find("tbody").find("span", class_="badge").text.startswith("Revoked ")
        assert (await client.get("/api/v1/auth/me", headers=bearer(secret))).status_code == 401
        assert await _audit(session, "token.revoke") == 1

    async def test_revoke_needs_csrf(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        await create_token(session, trainer)
        token = await session.scalar(select(ApiToken))
        assert token is not None
        response = await client.post(f"/admin/tokens/{token.id}/revoke", headers=htmx("tokens"))
        assert response.status_code == 403
        assert parse(response.text).text == CSRF_REFUSED
        await session.refresh(token)
        assert token.revoked_at is None

    async def test_rater_cannot_create_tokens(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        rater, csrf = await login_as(client, session, Role.rater)
        response = await client.post(
            f"/admin/users/{rater.id}/tokens", data={"scopes": ["judgments:write"], "csrf_token": csrf}
        )
        assert response.status_code == 403
        assert parse(response.text).find("p", class_="lead").text == ADMINS_ONLY
