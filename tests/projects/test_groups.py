"""Rater groups: a tag on a membership (such as expert), set and cleared through the members API and
the members page, shown in member lists and the quality table; each refusal in words."""

import httpx
import pytest
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import AuditEvent, ProjectMember, Role
from server.projects.schemas import check_group
from tests.factories import bearer, create_project, create_token, create_user
from tests.web.admin import login_as
from tests.web.html import parse

RULE = "must be 1 to 64 lowercase letters, digits, - or _ (such as expert)"


async def _group(session: AsyncSession, project_id: object, user_id: object) -> str | None:
    await session.commit()  # a new transaction: sees what the app committed
    return await session.scalar(
        select(ProjectMember.group).where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
    )


class TestCheckGroup:
    @pytest.mark.parametrize("value", ["expert", "a", "non-expert_2", "x" * 64, None])
    def test_accepted(self, value: str | None) -> None:
        assert check_group(value) == value

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("", f"{RULE}; send null to clear a member's group"),
            ("Expert", f"{RULE}; write it in lowercase: expert"),
            ("two words", RULE),
            ("é", RULE),
            ("x" * 65, RULE),
        ],
    )
    def test_refused_in_words(self, value: str, message: str) -> None:
        with pytest.raises(PydanticCustomError) as caught:
            check_group(value)
        assert caught.value.message() == message


class TestMembersApi:
    async def test_set_list_and_clear(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,))
        token = await create_token(session, admin)
        url = f"/api/v1/projects/{project.id}/members/{rater.id}"
        response = await client.patch(url, json={"group": "expert"}, headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["group"] == "expert"
        assert response.json()["suspended_at"] is None  # the group alone changes nothing else
        assert await _group(session, project.id, rater.id) == "expert"
        listed = (await client.get(f"/api/v1/projects/{project.id}/members", headers=bearer(token))).json()
        assert {m["email"]: m["group"] for m in listed} == {admin.email: None, rater.email: "expert"}
        quality = (await client.get(f"/api/v1/projects/{project.id}/quality", headers=bearer(token))).json()
        assert {r["email"]: r["group"] for r in quality["raters"]}[rater.email] == "expert"
        events = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == "member.group")))
        assert [e.data for e in events] == [{"group": "expert", "before": None}]
        cleared = await client.patch(url, json={"group": None}, headers=bearer(token))
        assert cleared.json()["group"] is None
        assert await _group(session, project.id, rater.id) is None

    async def test_suspension_keeps_the_group(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,))
        token = await create_token(session, admin)
        url = f"/api/v1/projects/{project.id}/members/{rater.id}"
        both = await client.patch(url, json={"group": "novice", "suspended": True}, headers=bearer(token))
        assert both.json()["group"] == "novice"
        assert both.json()["suspended_at"] is not None
        only = await client.patch(url, json={"suspended": False}, headers=bearer(token))
        assert only.json()["group"] == "novice"
        assert only.json()["suspended_at"] is None

    @pytest.mark.parametrize(
        ("body", "detail"),
        [
            ({}, "Send suspended, group, or both: there is nothing to change."),
            ({"suspended": None}, "suspended must be true or false; leave it out to change only the group."),
            ({"group": "Expert"}, f"Invalid request: group: {RULE}; write it in lowercase: expert"),
            ({"group": ""}, f"Invalid request: group: {RULE}; send null to clear a member's group"),
            ({"group": "a b"}, f"Invalid request: group: {RULE}"),
            ({"group": "x" * 65}, "Invalid request: group: String should have at most 64 characters"),
        ],
    )
    async def test_refusals(
        self, client: httpx.AsyncClient, session: AsyncSession, body: dict[str, object], detail: str
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,))
        token = await create_token(session, admin)
        response = await client.patch(
            f"/api/v1/projects/{project.id}/members/{rater.id}", json=body, headers=bearer(token)
        )
        assert response.status_code == 422
        assert response.json()["detail"] == detail
        assert await _group(session, project.id, rater.id) is None

    async def test_not_a_member(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        stranger = await create_user(session)
        project = await create_project(session, admin)
        token = await create_token(session, admin)
        response = await client.patch(
            f"/api/v1/projects/{project.id}/members/{stranger.id}", json={"group": "expert"}, headers=bearer(token)
        )
        assert response.status_code == 404
        assert response.json()["detail"] == f"User {stranger.id} is not a member of this project."


class TestMembersPage:
    async def test_set_shown_and_cleared(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        rater = await create_user(session, email="bo@example.com")
        project = await create_project(session, admin, members=(rater,))
        url = f"/admin/projects/{project.id}/members/{rater.id}/group"
        response = await client.post(url, data={"group": " expert ", "csrf_token": csrf})
        assert response.status_code == 303
        assert await _group(session, project.id, rater.id) == "expert"
        page = parse((await client.get(f"/admin/projects/{project.id}/members")).text)
        assert page.by_id(f"group-{rater.id}")["value"] == "expert"
        assert [o["value"] for o in page.by_id("known-groups").find_all("option")] == ["expert"]
        quality = parse((await client.get(f"/admin/projects/{project.id}/quality")).text)
        row = quality.by_id(f"rater-{rater.id}")
        assert "expert" in [b.text for b in row.find_all("span", class_="badge")]
        response = await client.post(url, data={"group": "", "csrf_token": csrf})
        assert response.status_code == 303
        assert await _group(session, project.id, rater.id) is None

    async def test_refused_in_words(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,))
        response = await client.post(
            f"/admin/projects/{project.id}/members/{rater.id}/group", data={"group": "Experts!", "csrf_token": csrf}
        )
        assert response.status_code == 422
        assert parse(response.text).find("p", class_="lead").text == f"Group {RULE}."
        assert await _group(session, project.id, rater.id) is None
