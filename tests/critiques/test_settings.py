"""The assistance settings: API (POST/PATCH /projects) and the settings page, with their refusals."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, Role
from tests.factories import bearer, create_project, create_token, create_user
from tests.web.admin import login_as
from tests.web.html import parse


async def test_api_defaults_create_and_patch(client: httpx.AsyncClient, session: AsyncSession) -> None:
    token = await create_token(session, await create_user(session, role=Role.admin))
    created = await client.post("/api/v1/projects", json={"name": "x"}, headers=bearer(token))
    body = created.json()
    assert (body["assistance"], body["assistance_ratio"], body["critique_ratings"]) == ("never", 0.5, "optional")
    patched = await client.patch(
        f"/api/v1/projects/{body['id']}",
        json={"assistance": "experiment", "assistance_ratio": 0.3, "critique_ratings": "required"},
        headers=bearer(token),
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["assistance"], patched.json()["assistance_ratio"]) == ("experiment", 0.3)
    project = await session.get(Project, created.json()["id"])
    assert project is not None
    await session.refresh(project)
    # Stored in the column reserved for it.
    assert project.assistance_policy == {"assistance": "experiment", "ratio": 0.3, "critique_ratings": "required"}
    refused = await client.patch(
        f"/api/v1/projects/{body['id']}", json={"assistance_ratio": 1.0}, headers=bearer(token)
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == "Invalid request: assistance_ratio: Input should be less than or equal to 0.95"
    refused = await client.patch(
        f"/api/v1/projects/{body['id']}", json={"assistance": "sometimes"}, headers=bearer(token)
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "Invalid request: assistance: Input should be 'always', 'never' or 'experiment'"
    )


VALID = {"name": "Critiques", "scale": "binary", "rationale": "optional", "overlap": "1", "lease_seconds": "600"}


async def test_settings_page_saves_assistance(client: httpx.AsyncClient, session: AsyncSession) -> None:
    admin, csrf = await login_as(client, session)
    project = await create_project(session, admin)
    page = parse((await client.get(f"/admin/projects/{project.id}/settings")).text)
    assert page.find("input", name="assistance", value="never").get("checked") is not None
    assert page.by_id("f-assistance_ratio")["value"] == "0.5"
    data = {**VALID, "assistance": "experiment", "assistance_ratio": "0.4", "critique_ratings": "required"}
    response = await client.post(f"/admin/projects/{project.id}/settings", data=data | {"csrf_token": csrf})
    assert response.status_code == 303
    await session.refresh(project)
    assert (project.assistance, project.assistance_ratio, project.critique_ratings) == ("experiment", 0.4, "required")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.99", "Assisted share must be between 0.05 and 0.95: an experiment needs both arms."),
        ("0", "Assisted share must be between 0.05 and 0.95: an experiment needs both arms."),
    ],
)
async def test_settings_page_refuses_a_one_armed_experiment(
    client: httpx.AsyncClient, session: AsyncSession, value: str, message: str
) -> None:
    admin, csrf = await login_as(client, session)
    project = await create_project(session, admin)
    data = {**VALID, "assistance": "experiment", "assistance_ratio": value, "csrf_token": csrf}
    response = await client.post(f"/admin/projects/{project.id}/settings", data=data)
    assert response.status_code == 422
    assert parse(response.text).by_id("f-assistance_ratio-error").text == message
