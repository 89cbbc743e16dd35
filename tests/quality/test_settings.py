"""The speed threshold of the quality flags (`fast_seconds`) on the settings page, with its guard rails."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import create_project
from tests.projects.test_settings_guards import FORM
from tests.web.admin import login_as
from tests.web.html import parse


class TestFastSecondsOnTheSettingsPage:
    async def test_saved_and_shown(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        form = {**FORM, "fast_seconds": "2.5", "csrf_token": csrf}
        response = await client.post(f"/admin/projects/{project.id}/settings", data=form)
        assert response.status_code == 303
        await session.refresh(project)
        assert project.fast_seconds == 2.5
        page = parse((await client.get(f"/admin/projects/{project.id}/settings")).text)
        assert page.by_id("f-fast_seconds").get("value") == "2.5"

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("0", "Fast answer threshold must be more than 0 seconds."),
            ("601", "Fast answer threshold must be at most 600 seconds (ten minutes)."),
        ],
    )
    async def test_out_of_range_is_refused_in_words(
        self, client: httpx.AsyncClient, session: AsyncSession, value: str, message: str
    ) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        form = {**FORM, "fast_seconds": value, "csrf_token": csrf}
        response = await client.post(f"/admin/projects/{project.id}/settings", data=form)
        assert response.status_code == 422
        assert parse(response.text).by_id("f-fast_seconds-error").text == message
