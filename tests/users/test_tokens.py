"""Tokens and passwords (issue 8, item 7): tokens outlive a password reset, and the account page says
so and offers to revoke them all; new tokens expire after 90 days unless the admin chooses otherwise."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import settings
from server.models import ApiToken, AuditEvent, Role, Scope
from tests.factories import bearer, create_token, create_user
from tests.web.admin import htmx, login_as
from tests.web.html import parse

ME = "/api/v1/auth/me"


def days_left(token: ApiToken) -> float:
    assert token.expires_at is not None
    return (token.expires_at - datetime.now(UTC)) / timedelta(days=1)


async def tokens_of(session: AsyncSession, user_id: object) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at)
    return list(await session.scalars(query.execution_options(populate_existing=True)))


class TestPasswordResetLeavesTokens:
    async def test_the_page_says_tokens_keep_working_and_offers_to_revoke_them(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        await create_token(session, trainer)
        await create_token(session, trainer)
        page = parse((await client.get(f"/admin/users/{trainer.id}")).text)
        assert page.by_id("f-password-hint").text == (
            "At least 8 characters. Their open browser sessions end; their API tokens keep working."
        )
        after = page.by_id("tokens-after-reset")
        assert "A new password does not stop this account's API tokens" in after.text
        form = after.find("form")
        assert form["action"] == f"/admin/users/{trainer.id}/tokens/revoke-all"
        assert form.find("button").text == "Revoke all tokens (2)"

    async def test_reset_keeps_tokens_and_says_so(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        secret = await create_token(session, trainer)
        response = await client.post(
            f"/admin/users/{trainer.id}/password",
            data={"password": "a brand new one", "csrf_token": csrf},
            headers={"HX-Request": "true"},
        )
        assert response.headers["HX-Redirect"] == f"/admin/users/{trainer.id}"
        assert "Their API tokens still work." in (await client.get(f"/admin/users/{trainer.id}")).text
        assert (await client.get(ME, headers=bearer(secret))).status_code == 200

    async def test_revoke_all_from_the_page(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        secrets = [await create_token(session, trainer) for _ in range(2)]
        other = await create_token(session, await create_user(session, role=Role.trainer))
        response = await client.post(f"/admin/users/{trainer.id}/tokens/revoke-all", data={"csrf_token": csrf})
        assert (response.status_code, response.headers["location"]) == (303, f"/admin/users/{trainer.id}")
        page = parse((await client.get(f"/admin/users/{trainer.id}")).text)
        assert f"2 API tokens of {trainer.email} revoked." in page.text
        assert page.by_id("tokens-after-reset").find("p", class_="muted").text == (
            "This account has no live API tokens."
        )
        for secret in secrets:
            assert (await client.get(ME, headers=bearer(secret))).status_code == 401
        assert (await client.get(ME, headers=bearer(other))).status_code == 200
        audited = await session.scalar(
            select(AuditEvent.data).where(AuditEvent.action == "token.revoke_all", AuditEvent.target_id == trainer.id)
        )
        assert audited == {"count": 2}

    async def test_revoke_all_needs_csrf(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        secret = await create_token(session, trainer)
        response = await client.post(f"/admin/users/{trainer.id}/tokens/revoke-all")
        assert response.status_code == 403
        assert (await client.get(ME, headers=bearer(secret))).status_code == 200

    async def test_revoke_all_over_the_api(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_token(session, await create_user(session, role=Role.admin))
        trainer = await create_user(session, role=Role.trainer)
        secrets = [await create_token(session, trainer) for _ in range(3)]
        await client.delete(f"/api/v1/tokens/{(await tokens_of(session, trainer.id))[0].id}", headers=bearer(admin))
        response = await client.delete(f"/api/v1/users/{trainer.id}/tokens", headers=bearer(admin))
        assert (response.status_code, response.json()) == (200, {"revoked": 2})
        assert all(t.revoked_at is not None for t in await tokens_of(session, trainer.id))
        assert [(await client.get(ME, headers=bearer(s))).status_code for s in secrets] == [401, 401, 401]


class TestExpiry:
    async def test_api_tokens_expire_after_90_days_by_default(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_token(session, await create_user(session, role=Role.admin))
        trainer = await create_user(session, role=Role.trainer)
        url = f"/api/v1/users/{trainer.id}/tokens"
        default = await client.post(url, json={"scopes": ["export:read"]}, headers=bearer(admin))
        chosen = await client.post(url, json={"scopes": ["export:read"], "expires_in_days": 7}, headers=bearer(admin))
        never = await client.post(url, json={"scopes": ["export:read"], "expires_in_days": None}, headers=bearer(admin))
        assert [r.status_code for r in (default, chosen, never)] == [201, 201, 201]
        assert 89.9 < days_left(ApiToken(expires_at=datetime.fromisoformat(default.json()["expires_at"]))) <= 90
        assert 6.9 < days_left(ApiToken(expires_at=datetime.fromisoformat(chosen.json()["expires_at"]))) <= 7
        assert never.json()["expires_at"] is None

    async def test_the_default_is_a_setting(
        self, client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "token_days", 30)
        admin = await create_token(session, await create_user(session, role=Role.admin))
        trainer = await create_user(session, role=Role.trainer)
        response = await client.post(
            f"/api/v1/users/{trainer.id}/tokens", json={"scopes": ["export:read"]}, headers=bearer(admin)
        )
        assert 29.9 < days_left(ApiToken(expires_at=datetime.fromisoformat(response.json()["expires_at"]))) <= 30

    @pytest.mark.parametrize(
        ("fields", "days"),
        [({}, 90.0), ({"expires_in_days": ""}, 90.0), ({"expires_in_days": "5"}, 5.0), ({"never_expires": "on"}, None)],
    )
    async def test_the_token_form(
        self, client: httpx.AsyncClient, session: AsyncSession, fields: dict[str, str], days: float | None
    ) -> None:
        _, csrf = await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        form = parse((await client.get(f"/admin/users/{trainer.id}")).text)
        assert form.by_id("f-expires_in_days")["value"] == "90"
        assert form.find("input", name="never_expires")["type"] == "checkbox"
        response = await client.post(
            f"/admin/users/{trainer.id}/tokens",
            data={"scopes": [Scope.export_read.value], "csrf_token": csrf, **fields},
            headers=htmx("tokens"),
        )
        assert response.status_code == 201
        (token,) = await tokens_of(session, trainer.id)
        if days is None:
            assert token.expires_at is None
        else:
            assert days - 0.1 < days_left(token) <= days

    async def test_no_token_is_created_by_a_refused_form(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        _, csrf = await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        response = await client.post(
            f"/admin/users/{trainer.id}/tokens",
            data={"scopes": ["export:read"], "expires_in_days": "0", "csrf_token": csrf},
            headers=htmx("tokens"),
        )
        assert response.status_code == 422
        assert await session.scalar(select(func.count()).select_from(ApiToken)) == 0
