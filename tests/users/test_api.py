import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import AuditEvent, Role
from tests.factories import bearer, create_token, create_user


class TestListUsers:
    async def test_admin_lists_users(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session, role=Role.rater)
        response = await client.get("/api/v1/users", headers=bearer(await create_token(session, admin)))
        assert response.status_code == 200
        assert {(u["email"], u["role"]) for u in response.json()} == {
            (admin.email, "admin"),
            (rater.email, "rater"),
        }

    async def test_rater_is_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        rater = await create_user(session)
        response = await client.get("/api/v1/users", headers=bearer(await create_token(session, rater)))
        assert response.status_code == 403
        assert response.json()["detail"] == "Only admins can do this."


class TestCreateUser:
    async def test_creates_and_audits(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        response = await client.post(
            "/api/v1/users",
            json={"email": "new@example.com", "password": "long enough", "role": "trainer"},
            headers=bearer(await create_token(session, admin)),
        )
        assert response.status_code == 201
        assert response.json()["role"] == "trainer"
        actions = (await session.scalars(select(AuditEvent.action))).all()
        assert "user.create" in actions

    async def test_duplicate_email_case_insensitive(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin, email="taken@example.com")
        response = await client.post(
            "/api/v1/users",
            json={"email": "TAKEN@example.com", "password": "long enough", "role": "rater"},
            headers=bearer(await create_token(session, admin)),
        )
        assert response.status_code == 409
        assert response.json()["detail"] == "A user with email TAKEN@example.com already exists."

    async def test_short_password_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        response = await client.post(
            "/api/v1/users",
            json={"email": "a@example.com", "password": "short", "role": "rater"},
            headers=bearer(await create_token(session, admin)),
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "password"

    async def test_password_reset_lets_user_log_in(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        reset = await client.patch(
            f"/api/v1/users/{rater.id}",
            json={"password": "brand new secret"},
            headers=bearer(await create_token(session, admin)),
        )
        assert reset.status_code == 200
        login = await client.post("/api/v1/auth/session", json={"email": rater.email, "password": "brand new secret"})
        assert login.status_code == 200


class TestNoSelfLockout:
    async def test_cannot_deactivate_yourself(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        response = await client.patch(
            f"/api/v1/users/{admin.id}", json={"is_active": False}, headers=bearer(await create_token(session, admin))
        )
        assert response.status_code == 422
        assert response.json()["detail"] == "You cannot deactivate your own account; another admin can."

    async def test_cannot_change_your_own_role(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        response = await client.patch(
            f"/api/v1/users/{admin.id}", json={"role": "rater"}, headers=bearer(await create_token(session, admin))
        )
        assert response.status_code == 422
        assert response.json()["detail"] == "You cannot change your own role; another admin can."
