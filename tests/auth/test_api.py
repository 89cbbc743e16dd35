from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import ApiToken, Role, Scope
from tests.factories import PASSWORD, bearer, create_project, create_token, create_user


class TestBearerTokens:
    async def test_unknown_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/auth/me", headers=bearer("assay_pat_nope"))
        assert response.status_code == 401
        assert response.json()["detail"] == "Invalid API token: no such token. Check that you copied all of it."

    async def test_malformed_header_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/auth/me", headers={"Authorization": "Token abc"})
        assert response.status_code == 401
        assert response.json()["detail"] == "The Authorization header must be 'Bearer <token>'."

    async def test_no_credentials_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/auth/me")
        assert response.status_code == 401
        assert response.json()["detail"] == ("Log in first, or send an API token as 'Authorization: Bearer <token>'.")

    async def test_valid_token_identifies_user_and_records_use(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session, role=Role.trainer)
        token = await create_token(session, user, Scope.export_read)
        response = await client.get("/api/v1/auth/me", headers=bearer(token))
        assert response.status_code == 200
        assert response.json()["email"] == user.email
        listed = await client.get(
            f"/api/v1/users/{user.id}/tokens",
            headers=bearer(await create_token(session, await create_user(session, role=Role.admin))),
        )
        assert listed.json()[0]["last_used_at"] is not None
        assert "token" not in listed.json()[0]

    async def test_revoked_token_is_401_with_reason(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        admin_token = await create_token(session, admin)
        user = await create_user(session, role=Role.trainer)
        created = await client.post(
            f"/api/v1/users/{user.id}/tokens",
            json={"scopes": ["export:read"], "name": "ci"},
            headers=bearer(admin_token),
        )
        assert created.status_code == 201
        secret = created.json()["token"]
        assert secret.startswith("assay_pat_")
        assert created.json()["prefix"] == secret[:16]
        revoked = await client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=bearer(admin_token))
        assert revoked.status_code == 200
        response = await client.get("/api/v1/auth/me", headers=bearer(secret))
        assert response.status_code == 401
        assert response.json()["detail"].startswith("This API token was revoked on ")

    async def test_expired_token_is_401_with_reason(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session, role=Role.trainer)
        secret = await create_token(session, user, Scope.export_read, days=1)
        await session.execute(update(ApiToken).values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
        await session.commit()
        response = await client.get("/api/v1/auth/me", headers=bearer(secret))
        assert response.status_code == 401
        assert response.json()["detail"].startswith("This API token expired on ")

    async def test_token_without_scope_is_403_naming_scope(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(trainer,))
        token = await create_token(session, trainer, Scope.reward_models_write)
        response = await client.get(f"/api/v1/projects/{project.id}/export", headers=bearer(token))
        assert response.status_code == 403
        assert response.json()["detail"] == "This API token lacks the 'export:read' scope; create a token that has it."

    async def test_role_cannot_hold_foreign_scope(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin_token = await create_token(session, await create_user(session, role=Role.admin))
        rater = await create_user(session, role=Role.rater)
        response = await client.post(
            f"/api/v1/users/{rater.id}/tokens", json={"scopes": ["export:read"]}, headers=bearer(admin_token)
        )
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "A rater cannot hold the scope(s) export:read; allowed for this role: judgments:write."
        )

    async def test_token_stored_only_as_hash(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session, role=Role.trainer)
        secret = await create_token(session, user, Scope.export_read)
        stored = (await session.execute(ApiToken.__table__.select())).mappings().one()
        assert secret not in stored.values()
        assert stored["token_hash"] != secret
        assert len(stored["token_hash"]) == 64


class TestBrowserSession:
    async def test_login_sets_httponly_lax_cookie(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session, role=Role.admin)
        response = await client.post("/api/v1/auth/session", json={"email": user.email.upper(), "password": PASSWORD})
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert response.json()["csrf_token"]

    async def test_wrong_password_is_401(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session)
        response = await client.post("/api/v1/auth/session", json={"email": user.email, "password": "nope-nope"})
        assert response.status_code == 401
        assert response.json()["detail"] == "Wrong email or password."

    async def test_unknown_email_is_same_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/v1/auth/session", json={"email": "ghost@example.com", "password": "x" * 9})
        assert response.status_code == 401
        assert response.json()["detail"] == "Wrong email or password."

    async def test_write_without_csrf_is_403(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session, role=Role.admin)
        await client.post("/api/v1/auth/session", json={"email": user.email, "password": PASSWORD})
        response = await client.post("/api/v1/projects", json={"name": "x"})
        assert response.status_code == 403
        assert response.json()["detail"] == (
            "The form's security token is missing or stale; reload the page and try again."
        )

    async def test_write_with_csrf_header_succeeds(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session, role=Role.admin)
        login = await client.post("/api/v1/auth/session", json={"email": user.email, "password": PASSWORD})
        response = await client.post(
            "/api/v1/projects", json={"name": "x"}, headers={"X-CSRF-Token": login.json()["csrf_token"]}
        )
        assert response.status_code == 201

    async def test_read_without_csrf_is_fine(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session)
        await client.post("/api/v1/auth/session", json={"email": user.email, "password": PASSWORD})
        assert (await client.get("/api/v1/auth/me")).status_code == 200

    async def test_logout_ends_session(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session)
        login = await client.post("/api/v1/auth/session", json={"email": user.email, "password": PASSWORD})
        out = await client.delete("/api/v1/auth/session", headers={"X-CSRF-Token": login.json()["csrf_token"]})
        assert out.status_code == 204
        response = await client.get("/api/v1/auth/me")
        assert response.status_code == 401

    async def test_deactivated_user_cannot_log_in(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin_token = await create_token(session, await create_user(session, role=Role.admin))
        user = await create_user(session)
        await client.patch(f"/api/v1/users/{user.id}", json={"is_active": False}, headers=bearer(admin_token))
        response = await client.post("/api/v1/auth/session", json={"email": user.email, "password": PASSWORD})
        assert response.status_code == 401
        assert response.json()["detail"] == "This account is deactivated; ask an admin to reactivate it."
