"""Admin pages for projects over plain HTTP: list, create/edit with messages per field, preview,
overview charts, members; refusals for non-admins and missing CSRF tokens."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.deps import CSRF_REFUSED
from server.models import AuditEvent, Project, ProjectMember, Role
from tests.factories import create_judgment, create_project, create_user, import_items, native_items
from tests.web.admin import HTMX, htmx, login_as
from tests.web.html import parse

ADMINS_ONLY = "This page is for admins. Your account can label the projects shared with it."
VALID = {
    "name": "Helpfulness",
    "instructions": "Pick the **more helpful** answer.",
    "scale": "8-point",
    "rationale": "required",
    "overlap": "3",
    "lease_seconds": "600",
    "allow_tie": "on",
    "status": "active",
}


async def _audit(session: AsyncSession, action: str) -> list[AuditEvent]:
    return list(await session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


class TestProjectList:
    async def test_lists_projects_with_links(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        project = await create_project(session, admin, name="Summaries <b>v2</b>")
        response = await client.get("/admin/projects")
        assert response.status_code == 200
        row = parse(response.text).find("tbody").find("tr")
        link = row.find("a", href=f"/admin/projects/{project.id}")
        assert link.text == "Summaries <b>v2</b>"  # a name is text, never markup
        assert row.find("span", class_="badge").text == "Active"

    async def test_empty_state(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await login_as(client, session)
        page = parse((await client.get("/admin/projects")).text)
        assert page.find(class_="empty").find("h2").text == "No projects yet"

    @pytest.mark.parametrize("role", [Role.rater, Role.trainer])
    async def test_non_admin_gets_403(self, client: httpx.AsyncClient, session: AsyncSession, role: Role) -> None:
        await login_as(client, session, role)
        response = await client.get("/admin/projects")
        assert response.status_code == 403
        assert parse(response.text).find("p", class_="lead").text == ADMINS_ONLY

    async def test_anonymous_goes_to_login(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/admin/projects")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fadmin%2Fprojects"


class TestCreateProject:
    async def test_form_shows_defaults(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await login_as(client, session)
        page = parse((await client.get("/admin/projects/new")).text)
        assert page.by_id("f-overlap")["value"] == "1"
        assert page.by_id("f-lease_seconds")["value"] == "900"
        assert page.find("input", name="scale", value="binary").get("checked") is not None
        assert page.find("input", name="rationale", value="optional").get("checked") is not None
        assert page.find("input", name="status", value="active").get("checked") is not None

    async def test_creates_and_records_audit(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        response = await client.post("/admin/projects", data={**VALID, "csrf_token": csrf})
        assert response.status_code == 303
        project = await session.scalar(select(Project))
        assert project is not None
        assert response.headers["location"] == f"/admin/projects/{project.id}"
        assert (project.scale, project.rationale, project.overlap, project.lease_seconds) == (
            "8-point",
            "required",
            3,
            600,
        )
        assert (project.allow_tie, project.allow_both_bad, project.is_active) == (True, False, True)
        assert len(await _audit(session, "project.create")) == 1
        landing = await client.get(response.headers["location"])
        assert parse(landing.text).by_id("flash").text == "Project “Helpfulness” created."

    async def test_htmx_submit_redirects_with_header(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        response = await client.post("/admin/projects", data={**VALID, "csrf_token": csrf}, headers=HTMX)
        project = await session.scalar(select(Project))
        assert project is not None
        assert (response.status_code, response.headers["HX-Redirect"]) == (200, f"/admin/projects/{project.id}")

    async def test_invalid_fields_have_their_messages(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        data = {**VALID, "name": "", "overlap": "0", "lease_seconds": "10", "csrf_token": csrf}
        response = await client.post("/admin/projects", data=data)
        assert response.status_code == 422
        page = parse(response.text)
        assert page.by_id("f-name-error").text == "Name is required."
        assert page.by_id("f-overlap-error").text == "Overlap must be at least 1."
        assert page.by_id("f-lease_seconds-error").text == "Lease time must be at least 30 seconds."
        assert page.by_id("f-overlap")["aria-invalid"] == "true"
        summary = page.by_id("form-error")
        assert summary.text.startswith("Not saved. Fix these 3 fields:")
        assert page.by_id("f-lease_seconds")["value"] == "10"  # what was typed stays
        assert page.by_id("f-instructions").text == VALID["instructions"]
        assert await session.scalar(select(Project)) is None

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("overlap", "three", "Overlap must be a whole number."),
            ("overlap", "101", "Overlap must be at most 100."),
            ("lease_seconds", "90000", "Lease time must be at most 86,400 seconds (one day)."),
            ("scale", "5-point", "Scale must be one of binary, 4-point or 8-point."),
            ("rationale", "sometimes", "Rationale must be one of off, optional or required."),
            ("name", "x" * 201, "Name must be at most 200 characters."),
        ],
    )
    async def test_each_refusal_in_words(
        self, client: httpx.AsyncClient, session: AsyncSession, field: str, value: str, message: str
    ) -> None:
        _, csrf = await login_as(client, session)
        response = await client.post("/admin/projects", data={**VALID, field: value, "csrf_token": csrf})
        assert response.status_code == 422
        assert parse(response.text).by_id(f"f-{field}-error").text == message

    async def test_missing_csrf_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await login_as(client, session)
        response = await client.post("/admin/projects", data=VALID)
        assert response.status_code == 403
        assert parse(response.text).find("p", class_="lead").text == CSRF_REFUSED
        assert await session.scalar(select(Project)) is None

    async def test_rater_cannot_create(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session, Role.rater)
        response = await client.post("/admin/projects", data={**VALID, "csrf_token": csrf})
        assert response.status_code == 403
        assert parse(response.text).find("p", class_="lead").text == ADMINS_ONLY


class TestEditProject:
    async def test_form_shows_current_settings(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        project = await create_project(session, admin, scale="4-point", allow_both_bad=True, is_active=False)
        page = parse((await client.get(f"/admin/projects/{project.id}/settings")).text)
        assert page.find("input", name="scale", value="4-point").get("checked") is not None
        assert page.find("input", name="allow_both_bad").get("checked") is not None
        assert page.find("input", name="allow_tie").get("checked") is None
        assert page.find("input", name="status", value="paused").get("checked") is not None
        assert page.find("nav", class_="tabs").find("a", aria_current="page").text == "Settings"

    async def test_saves_pause_and_overlap(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        data = {**VALID, "status": "paused", "overlap": "2", "csrf_token": csrf}
        response = await client.post(f"/admin/projects/{project.id}/settings", data=data)
        assert response.status_code == 303
        await session.refresh(project)
        assert (project.is_active, project.overlap, project.allow_tie) == (False, 2, True)
        [event] = await _audit(session, "project.update")
        assert event.data["is_active"] == "False"

    async def test_invalid_keeps_stored_settings(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin, name="Keep me")
        response = await client.post(
            f"/admin/projects/{project.id}/settings", data={**VALID, "name": " ", "csrf_token": csrf}
        )
        assert response.status_code == 422
        assert parse(response.text).by_id("f-name-error").text == "Name is required."  # blanks are trimmed
        await session.refresh(project)
        assert project.name == "Keep me"

    async def test_the_handoff_rule_is_set_shown_and_turned_off(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        rule = {"handoff_min_confidence": "0.9", "handoff_min_judges": "2", "handoff_spot_check_rate": "0.2"}
        data = {**VALID, "handoff": "on", **rule, "csrf_token": csrf}
        assert (await client.post(f"/admin/projects/{project.id}/settings", data=data)).status_code == 303
        await session.refresh(project)
        assert project.handoff == {"min_confidence": 0.9, "min_judges": 2, "spot_check_rate": 0.2}
        page = parse((await client.get(f"/admin/projects/{project.id}/settings")).text)
        assert page.find("input", name="handoff").get("checked") is not None
        assert page.find("input", name="handoff_min_judges")["value"] == "2"
        data = {**VALID, **rule, "csrf_token": csrf}  # unticked
        assert (await client.post(f"/admin/projects/{project.id}/settings", data=data)).status_code == 303
        await session.refresh(project)
        assert project.handoff is None

    async def test_a_bad_handoff_rule_is_refused_beside_its_field(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        rule = {"handoff_min_confidence": "1.5", "handoff_min_judges": "1", "handoff_spot_check_rate": "0.1"}
        data = {**VALID, "handoff": "on", **rule, "csrf_token": csrf}
        response = await client.post(f"/admin/projects/{project.id}/settings", data=data)
        assert response.status_code == 422
        page = parse(response.text)
        assert page.by_id("f-handoff_min_confidence-error").text == "Hand-off threshold must be at most 1.0."
        assert page.find("input", name="handoff_min_confidence")["value"] == "1.5"
        await session.refresh(project)
        assert project.handoff is None

    async def test_unknown_project_is_404(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await login_as(client, session)
        response = await client.get("/admin/projects/00000000-0000-0000-0000-000000000000/settings")
        assert response.status_code == 404
        assert parse(response.text).find("p", class_="lead").text == (
            "No project with id 00000000-0000-0000-0000-000000000000 is shared with you."
        )


class TestPreview:
    async def test_htmx_gets_the_fragment(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        response = await client.post(
            "/admin/projects/preview",
            data={"instructions": "Be **brief**. <script>alert(1)</script>", "csrf_token": csrf},
            headers=htmx("preview"),
        )
        assert response.status_code == 200
        assert "<html" not in response.text
        assert response.text.strip() == "<p>Be <strong>brief</strong>. &lt;script&gt;alert(1)&lt;/script&gt;</p>"

    async def test_without_htmx_a_full_page(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        response = await client.post("/admin/projects/preview", data={"instructions": "# Title", "csrf_token": csrf})
        page = parse(response.text)
        assert page.find("title").text == "Instructions preview · Assay"
        assert page.by_id("preview").find("h1").text == "Title"

    async def test_empty_says_so(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf = await login_as(client, session)
        response = await client.post("/admin/projects/preview", data={"csrf_token": csrf}, headers=htmx("preview"))
        assert parse(response.text).text == "Nothing to preview yet: write the instructions in the box."

    async def test_needs_csrf(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await login_as(client, session)
        response = await client.post("/admin/projects/preview", data={"instructions": "x"}, headers=htmx("preview"))
        assert response.status_code == 403
        assert parse(response.text).text == CSRF_REFUSED


class TestOverview:
    async def test_progress_charts_and_rater_table(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        ana = await create_user(session, email="ana@example.com")
        project = await create_project(session, admin, members=(ana,))
        await import_items(session, project, admin, native_items(4))
        now = datetime.now(UTC)
        await create_judgment(session, project, ana, active_ms=4000, at=now - timedelta(hours=1))
        await create_judgment(session, project, ana, active_ms=6000, at=now)
        page = parse((await client.get(f"/admin/projects/{project.id}")).text)
        stats = [s.text for s in page.find_all(class_="stat")]
        assert stats[:5] == ["4 items", "2 complete", "2 judgments", "0 skipped", "0 active leases"]
        throughput = page.find("svg", class_="chart-throughput")
        assert throughput["role"] == "img"
        assert throughput.find("title").text == "Judgments per hour"
        assert throughput.find("desc").text.startswith("2 judgments in the last 48 hours")
        assert len(throughput.find_all("g", class_="chart-bar")) == 48
        counts = page.find("svg", class_="chart-rater-counts")
        assert [t.text for t in counts.find_all("text", class_="chart-value")] == ["2 judgments"]
        times = page.find("svg", class_="chart-rater-times")
        assert times.find("desc").text == "ana@example.com: 5.0 s"
        row = page.find("section", aria_labelledby="raters-heading").find("tbody").find("tr")
        assert [c.text for c in row.find_all("td")][:2] == ["2", "5.0 s"]

    async def test_no_judgments_yet(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        project = await create_project(session, admin)
        page = parse((await client.get(f"/admin/projects/{project.id}?hours=24")).text)
        assert page.find("text", class_="chart-empty").text == "No judgments in this window"
        assert [p.text for p in page.find_all("p", class_="chart-none")] == [
            "No judgments in this window.",
            "No active times recorded in this window.",
        ]
        assert page.find("nav", class_="segmented").find("a", aria_current="page").text == "24 hours"

    async def test_unknown_window_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        project = await create_project(session, admin)
        response = await client.get(f"/admin/projects/{project.id}?hours=12")
        assert response.status_code == 422
        assert parse(response.text).find("p", class_="lead").text == "Choose a window of 24, 48 or 168 hours."


class TestMembers:
    async def test_add_by_email_and_remove(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        rater = await create_user(session, email="bo@example.com")
        project = await create_project(session, admin)
        page = parse((await client.get(f"/admin/projects/{project.id}/members")).text)
        assert [o["value"] for o in page.by_id("addable").find_all("option")] == ["bo@example.com"]
        response = await client.post(
            f"/admin/projects/{project.id}/members", data={"email": "BO@example.com ", "csrf_token": csrf}
        )
        assert response.status_code == 303
        members = set(
            await session.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == project.id))
        )
        assert members == {admin.id, rater.id}
        assert len(await _audit(session, "member.add")) == 1
        listed = parse((await client.get(f"/admin/projects/{project.id}/members")).text)
        assert "bo@example.com" in [th.text for th in listed.find("tbody").find_all("th")]
        response = await client.post(
            f"/admin/projects/{project.id}/members/{rater.id}/remove", data={"csrf_token": csrf}
        )
        assert response.status_code == 303
        members = set(
            await session.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == project.id))
        )
        assert members == {admin.id}
        assert len(await _audit(session, "member.remove")) == 1

    @pytest.mark.parametrize(
        ("email", "message"),
        [
            ("nobody@example.com", "No account has the email nobody@example.com; create it under Users first."),
            ("", "Enter an email."),
        ],
    )
    async def test_refusals(self, client: httpx.AsyncClient, session: AsyncSession, email: str, message: str) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        response = await client.post(f"/admin/projects/{project.id}/members", data={"email": email, "csrf_token": csrf})
        assert response.status_code == 422
        page = parse(response.text)
        assert page.by_id("f-email-error").text == message
        assert page.by_id("f-email")["value"] == email

    async def test_removing_a_non_member_is_404(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        rater = await create_user(session)
        response = await client.post(
            f"/admin/projects/{project.id}/members/{rater.id}/remove", data={"csrf_token": csrf}
        )
        assert response.status_code == 404
        assert parse(response.text).find("p", class_="lead").text == f"User {rater.id} is not a member of this project."
