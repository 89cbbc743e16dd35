"""Skipping with a reason code (API and page), the counts admins see, and the project's break
reminder setting (API and settings page)."""

from html import unescape

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import pages
from server.models import Assignment, Project, Role
from tests.factories import (
    PASSWORD,
    bearer,
    create_project,
    create_token,
    create_user,
    import_items,
    native_items,
    next_item,
)
from tests.labeling.test_routes import make_rater, slots
from tests.projects.test_routes import VALID
from tests.web.admin import login_as
from tests.web.conftest import page_login
from tests.web.html import parse

__all__ = ["make_rater"]  # the fixture, shared with test_routes

BAD_CODE_API = "Invalid request: reason_code: Input should be 'unclear', 'harmful', 'cannot_judge' or 'other'"


async def rater_with_items(session: AsyncSession, n: int = 6) -> tuple[Project, str, str]:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,))
    await import_items(session, project, admin, native_items(n))
    return project, await create_token(session, rater), await create_token(session, admin)


class TestApi:
    async def test_reason_code_and_words_are_stored_and_counted(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        project, token, admin_token = await rater_with_items(session)
        bodies = [
            {"reason_code": "harmful", "reason": "Graphic."},
            {"reason_code": "harmful"},
            {"reason_code": "cannot_judge"},
            {"reason": "Words only."},
            None,
        ]
        for body in bodies:
            lease = (await next_item(client, project, token)).json()
            kwargs = {"json": body} if body is not None else {}
            response = await client.post(f"/api/v1/assignments/{lease['id']}/skip", headers=bearer(token), **kwargs)
            assert response.status_code == 200, response.text
        rows = [
            (a.skip_reason_code, a.skip_reason)
            for a in await session.scalars(select(Assignment).order_by(Assignment.leased_at))
        ]
        assert rows == [
            ("harmful", "Graphic."),
            ("harmful", None),
            ("cannot_judge", None),
            (None, "Words only."),
            (None, None),
        ]
        progress = (await client.get(f"/api/v1/projects/{project.id}/progress", headers=bearer(admin_token))).json()
        assert progress["skipped"] == 5
        assert progress["skip_reasons"] == {"unclear": 0, "harmful": 2, "cannot_judge": 1, "other": 0, "none": 2}

    async def test_a_second_skip_keeps_the_first_reason(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        project, token, _ = await rater_with_items(session)
        lease = (await next_item(client, project, token)).json()
        path = f"/api/v1/assignments/{lease['id']}/skip"
        assert (await client.post(path, json={"reason_code": "unclear"}, headers=bearer(token))).status_code == 200
        assert (await client.post(path, json={"reason_code": "other"}, headers=bearer(token))).status_code == 200
        assert await session.scalar(select(Assignment.skip_reason_code)) == "unclear"

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"reason_code": "boring"}, BAD_CODE_API),
            ({"reason_code": ""}, BAD_CODE_API),
            ({"reason": "x" * 2001}, "Invalid request: reason: String should have at most 2000 characters"),
            ({"reason_code": "other", "why": "?"}, "Invalid request: why: Extra inputs are not permitted"),
        ],
    )
    async def test_refusals(
        self, client: httpx.AsyncClient, session: AsyncSession, body: dict[str, str], message: str
    ) -> None:
        project, token, _ = await rater_with_items(session)
        lease = (await next_item(client, project, token)).json()
        response = await client.post(f"/api/v1/assignments/{lease['id']}/skip", json=body, headers=bearer(token))
        assert response.status_code == 422
        assert response.json()["detail"] == message
        assert await session.scalar(select(Assignment.status)) == "leased"


class TestPage:
    async def test_page_skip_with_reason_and_counts_on_admin_pages(
        self, make_rater, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        rater, project, admin = await make_rater()
        opened = unescape((await rater.open(project)).text)
        (current, _), (ahead, _) = slots(opened)
        for code, label in pages.SKIP_REASONS.items():
            assert f'<option value="{code.value}">{label}</option>' in opened
        response = await rater.post(
            f"/assignments/{current}/skip", ahead=ahead, reason_code="unclear", reason="Garbled."
        )
        assert response.status_code == 200
        row = await session.scalar(select(Assignment).where(Assignment.skip_reason_code.is_not(None)))
        assert row is not None
        assert (str(row.id), row.skip_reason_code, row.skip_reason) == (current, "unclear", "Garbled.")

        await page_login(client, admin.email, PASSWORD)
        overview = parse((await client.get(f"/admin/projects/{project.id}")).text)
        assert "1 skipped (1 unclear)" in " ".join(overview.text.split())
        batches = parse((await client.get(f"/admin/projects/{project.id}/batches")).text)
        assert "Skipped 1" in " ".join(batches.text.split())

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"reason_code": "boring"}, pages.BAD_SKIP_REASON),
            ({"reason_code": "x" * 5000}, pages.BAD_SKIP_REASON),
            ({"reason_code": "other", "reason": "x" * 2001}, pages.SKIP_REASON_TOO_LONG),
            ({"reason": "a\x00b"}, pages.SKIP_REASON_NUL),
        ],
    )
    async def test_refusals_inline(self, make_rater, session: AsyncSession, data: dict[str, str], message: str) -> None:
        rater, project, _ = await make_rater()
        (current, _), _ = slots((await rater.open(project)).text)
        response = await rater.post(f"/assignments/{current}/skip", **data)
        assert response.status_code == 422
        assert response.headers["HX-Retarget"] == f"#error-{current}"
        assert unescape(response.text) == message
        assert await session.scalar(select(Assignment.status).where(Assignment.status == "skipped")) is None


class TestBreakReminderSetting:
    async def test_api_default_update_and_bounds(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        token = await create_token(session, admin)
        created = await client.post("/api/v1/projects", json={"name": "P"}, headers=bearer(token))
        assert created.json()["break_reminder_minutes"] == 50
        path = f"/api/v1/projects/{created.json()['id']}"
        assert (await client.patch(path, json={"break_reminder_minutes": 0}, headers=bearer(token))).json()[
            "break_reminder_minutes"
        ] == 0
        refused = await client.patch(path, json={"break_reminder_minutes": 481}, headers=bearer(token))
        assert refused.status_code == 422
        assert refused.json()["detail"] == (
            "Invalid request: break_reminder_minutes: Input should be less than or equal to 480"
        )

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("-1", "Break reminder must be at least 0 minutes (0 turns it off)."),
            ("481", "Break reminder must be at most 480 minutes (eight hours)."),
            ("soon", "Break reminder must be a whole number."),
        ],
    )
    async def test_settings_page_refusals(
        self, client: httpx.AsyncClient, session: AsyncSession, value: str, message: str
    ) -> None:
        _, csrf = await login_as(client, session)
        data = {**VALID, "break_reminder_minutes": value, "csrf_token": csrf}
        response = await client.post("/admin/projects", data=data)
        assert response.status_code == 422
        assert parse(response.text).by_id("f-break_reminder_minutes-error").text == message

    async def test_settings_page_saves_it_and_the_rater_page_uses_it(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin, name="Breaks")
        form = parse((await client.get(f"/admin/projects/{project.id}/settings")).text)
        assert form.by_id("f-break_reminder_minutes")["value"] == "50"
        data = {**VALID, "break_reminder_minutes": "25", "csrf_token": csrf}
        response = await client.post(f"/admin/projects/{project.id}/settings", data=data)
        assert response.status_code in (200, 303), response.text
        await session.refresh(project)
        assert project.break_reminder_minutes == 25
        page = await client.get(f"/projects/{project.id}/label")
        assert 'data-break-minutes="25"' in page.text
