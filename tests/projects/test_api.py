import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Item, Role
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items


class TestCreateProject:
    async def test_admin_creates_with_settings(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        token = await create_token(session, await create_user(session, role=Role.admin))
        response = await client.post(
            "/api/v1/projects",
            json={"name": "HH", "overlap": 3, "scale": "8-point", "allow_tie": True, "rationale": "required"},
            headers=bearer(token),
        )
        assert response.status_code == 201
        body = response.json()
        assert (body["overlap"], body["scale"], body["lease_seconds"], body["rationale"]) == (
            3,
            "8-point",
            900,
            "required",
        )

    async def test_instructions_markdown_renders_html_as_text(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        token = await create_token(session, await create_user(session, role=Role.admin))
        response = await client.post(
            "/api/v1/projects",
            json={"name": "x", "instructions": "Be **kind**. <script>alert(1)</script> [go](javascript:alert(1))"},
            headers=bearer(token),
        )
        assert response.json()["instructions_html"] == (
            "<p>Be <strong>kind</strong>. &lt;script&gt;alert(1)&lt;/script&gt; [go](javascript:alert(1))</p>\n"
        )

    async def test_bad_scale_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        token = await create_token(session, await create_user(session, role=Role.admin))
        response = await client.post("/api/v1/projects", json={"name": "x", "scale": "5-point"}, headers=bearer(token))
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "scale"

    async def test_overlap_zero_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        token = await create_token(session, await create_user(session, role=Role.admin))
        response = await client.post("/api/v1/projects", json={"name": "x", "overlap": 0}, headers=bearer(token))
        assert response.status_code == 422
        assert response.json()["detail"] == "Invalid request: overlap: Input should be greater than or equal to 1"

    async def test_trainer_cannot_create(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        token = await create_token(session, await create_user(session, role=Role.trainer))
        response = await client.post("/api/v1/projects", json={"name": "x"}, headers=bearer(token))
        assert response.status_code == 403


class TestVisibility:
    async def test_rater_sees_only_member_projects(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        mine = await create_project(session, admin, members=(rater,), name="Mine")
        hidden = await create_project(session, admin, name="Hidden")
        token = await create_token(session, rater)
        listed = await client.get("/api/v1/projects", headers=bearer(token))
        assert [p["name"] for p in listed.json()] == ["Mine"]
        assert (await client.get(f"/api/v1/projects/{mine.id}", headers=bearer(token))).status_code == 200
        response = await client.get(f"/api/v1/projects/{hidden.id}", headers=bearer(token))
        assert response.status_code == 404
        assert response.json()["detail"] == f"No project with id {hidden.id} is shared with you."

    async def test_members_added_and_removed(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        project = await create_project(session, admin)
        token = await create_token(session, admin)
        added = await client.post(
            f"/api/v1/projects/{project.id}/members", json={"user_id": str(rater.id)}, headers=bearer(token)
        )
        assert added.status_code == 204
        members = await client.get(f"/api/v1/projects/{project.id}/members", headers=bearer(token))
        assert rater.email in [m["email"] for m in members.json()]
        removed = await client.delete(f"/api/v1/projects/{project.id}/members/{rater.id}", headers=bearer(token))
        assert removed.status_code == 204
        again = await client.delete(f"/api/v1/projects/{project.id}/members/{rater.id}", headers=bearer(token))
        assert again.status_code == 404
        assert again.json()["detail"] == f"User {rater.id} is not a member of this project."


class TestUpdateProject:
    async def test_raising_overlap_reopens_completed_items(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin, overlap=1)
        await import_items(session, project, admin, native_items(2))
        token = await create_token(session, admin)
        response = await client.patch(f"/api/v1/projects/{project.id}", json={"overlap": 3}, headers=bearer(token))
        assert response.status_code == 200
        assert set((await session.scalars(select(Item.wanted))).all()) == {3}

    async def test_progress_counts(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        await import_items(session, project, admin, native_items(4))
        response = await client.get(
            f"/api/v1/projects/{project.id}/progress", headers=bearer(await create_token(session, admin))
        )
        assert response.json() == {
            "items": 4,
            "completed_items": 0,
            "judgments": 0,
            "surplus_judgments": 0,
            "active_leases": 0,
            "skips": 0,
        }
