"""Settings pages: every setting has a control (active learning, gold rate), an overlap or scale
change shows the work it touches before it is saved, the overlap guard rail, a new project's next steps."""

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, Role
from server.projects import guards
from server.projects import service as projects
from tests.factories import create_judgment, create_project, create_user, import_items, native_items
from tests.web.admin import login_as
from tests.web.html import parse

FORM = {
    "name": "Helpfulness",
    "instructions": "",
    "scale": "binary",
    "rationale": "optional",
    "overlap": "1",
    "lease_seconds": "900",
    "gold_rate": "0",
    "status": "active",
}


async def _reload(session: AsyncSession, project: Project) -> Project:
    await session.refresh(project)
    return project


class TestControls:
    async def test_active_learning_and_gold_rate(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        form = {**FORM, "active_learning": "on", "gold_rate": "0.25", "csrf_token": csrf}
        response = await client.post(f"/admin/projects/{project.id}/settings", data=form)
        assert response.status_code == 303
        project = await _reload(session, project)
        assert (project.active_learning, project.gold_rate) == (True, 0.25)
        page = parse((await client.get(f"/admin/projects/{project.id}/settings")).text)
        box = next(i for i in page.find_all("input") if i.get("name") == "active_learning")
        assert box.get("checked") is not None
        off = await client.post(f"/admin/projects/{project.id}/settings", data={**FORM, "csrf_token": csrf})
        assert off.status_code == 303
        assert (await _reload(session, project)).active_learning is False

    async def test_gold_rate_out_of_range(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        form = {**FORM, "gold_rate": "2", "csrf_token": csrf}
        response = await client.post(f"/admin/projects/{project.id}/settings", data=form)
        assert response.status_code == 422
        assert parse(response.text).by_id("f-gold_rate-error").text == "Gold rate must be between 0 and 1."


class TestImpact:
    async def test_overlap_change_shows_numbers_then_saves_when_confirmed(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        await import_items(session, project, admin, native_items(3))
        await create_judgment(session, project, admin)
        await create_judgment(session, project, admin)
        url = f"/admin/projects/{project.id}/settings"
        first = await client.post(url, data={**FORM, "overlap": "2", "csrf_token": csrf})
        assert first.status_code == 200
        box = parse(first.text).by_id("impact")
        assert box.find("li").text == (
            "Overlap 1 → 2: 2 items now complete will reopen (they have fewer than 2 judgments)."
        )
        assert (await _reload(session, project)).overlap == 1  # nothing saved yet
        confirmed = box.find("input")["value"]
        second = await client.post(url, data={**FORM, "overlap": "2", "confirmed": confirmed, "csrf_token": csrf})
        assert second.status_code == 303
        assert (await _reload(session, project)).overlap == 2

    async def test_scale_change_counts_judgments(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        await import_items(session, project, admin, native_items(2))
        await create_judgment(session, project, admin)
        response = await client.post(
            f"/admin/projects/{project.id}/settings", data={**FORM, "scale": "4-point", "csrf_token": csrf}
        )
        assert parse(response.text).by_id("impact").find("li").text == (
            "Scale binary → 4-point: 1 judgment already made on the binary scale keep their strength as given; "
            "exports of the project then mix both scales."
        )

    async def test_no_work_no_question(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        response = await client.post(
            f"/admin/projects/{project.id}/settings", data={**FORM, "overlap": "3", "csrf_token": csrf}
        )
        assert response.status_code == 303  # no item changes state: saved at once
        assert (await _reload(session, project)).overlap == 3


class TestGuardRails:
    async def test_overlap_above_raters(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        rater = await create_user(session, role=Role.rater)
        project = await create_project(session, admin, members=(rater,), overlap=3)
        for url in (f"/admin/projects/{project.id}", f"/admin/projects/{project.id}/settings"):
            warning = parse((await client.get(url)).text).by_id("overlap-warning").text
            assert warning.startswith("Overlap 3 needs at least 3 raters; this project has 1 rater.")

    async def test_new_project_next_steps(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        project = await create_project(session, admin)
        steps = parse((await client.get(f"/admin/projects/{project.id}")).text).by_id("next-steps")
        links = [a["href"] for a in steps.find_all("a")]
        assert links[:2] == [f"/admin/projects/{project.id}/members", f"/admin/projects/{project.id}/batches"]
        rater = await create_user(session, role=Role.rater)
        await import_items(session, project, admin, native_items(1))
        await projects.add_member(session, project, rater.id, actor=admin)
        await session.commit()
        page = parse((await client.get(f"/admin/projects/{project.id}")).text)
        assert page.find_all(id="next-steps") == []


def test_overlap_warning_words() -> None:
    assert guards.overlap_warning(1, 0) == (
        "Overlap 1 needs at least 1 rater; this project has no raters. "
        "Items cannot complete until enough raters are members (Members tab), or lower the overlap."
    )
    assert guards.overlap_warning(2, 2) is None
