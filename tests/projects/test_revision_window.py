"""The project's revision window: bounded in the API schema and a control on the settings page."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import bearer, create_project, create_token
from tests.projects.test_routes import VALID
from tests.web.admin import login_as
from tests.web.html import parse


class TestRevisionWindowSetting:
    async def test_api_default_bounds_and_update(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        token = await create_token(session, admin)
        created = await client.post("/api/v1/projects", json={"name": "W"}, headers=bearer(token))
        assert created.json()["revision_window_minutes"] == 10
        url = f"/api/v1/projects/{created.json()['id']}"
        for value in (-1, 1441):
            refused = await client.patch(url, json={"revision_window_minutes": value}, headers=bearer(token))
            assert refused.status_code == 422
        off = await client.patch(url, json={"revision_window_minutes": 0}, headers=bearer(token))
        assert off.json()["revision_window_minutes"] == 0

    async def test_settings_page_shows_and_saves_it(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin, revision_window_minutes=30)
        page = parse((await client.get(f"/admin/projects/{project.id}/settings")).text)
        assert page.by_id("f-revision_window_minutes")["value"] == "30"
        data = {**VALID, "revision_window_minutes": "0", "csrf_token": csrf}
        response = await client.post(f"/admin/projects/{project.id}/settings", data=data)
        assert response.status_code == 303
        await session.refresh(project)
        assert project.revision_window_minutes == 0

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("1441", "Revision window must be at most 1,440 minutes (one day)."),
            ("-5", "Revision window must be 0 (off) or more minutes."),
        ],
    )
    async def test_out_of_bounds_in_words(
        self, client: httpx.AsyncClient, session: AsyncSession, value: str, message: str
    ) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        data = {**VALID, "revision_window_minutes": value, "csrf_token": csrf}
        response = await client.post(f"/admin/projects/{project.id}/settings", data=data)
        assert response.status_code == 422
        assert parse(response.text).by_id("f-revision_window_minutes-error").text == message
        await session.refresh(project)
        assert project.revision_window_minutes == 10
