"""Every admin page refuses raters and trainers with the same 403 page, and sends strangers to log in."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Role
from tests.factories import create_project, create_user, import_items, native_items
from tests.web.admin import login_as
from tests.web.html import parse

ADMINS_ONLY = "This page is for admins. Your account can label the projects shared with it."
PAGES = (
    "/admin/projects",
    "/admin/projects/new",
    "/admin/projects/{project}",
    "/admin/projects/{project}/settings",
    "/admin/projects/{project}/members",
    "/admin/projects/{project}/batches",
    "/admin/users",
    "/admin/users/{admin}",
)
WRITES = (
    "/admin/projects",
    "/admin/projects/preview",
    "/admin/projects/{project}/settings",
    "/admin/projects/{project}/members",
    "/admin/projects/{project}/batches",
    "/admin/batches/{batch}",
    "/admin/users",
    "/admin/users/{admin}/password",
    "/admin/users/{admin}/active",
    "/admin/users/{admin}/tokens",
)


@pytest.fixture
async def ids(session: AsyncSession) -> dict[str, str]:
    admin = await create_user(session, role=Role.admin)
    project = await create_project(session, admin)
    batch = await import_items(session, project, admin, native_items(1))
    return {"admin": str(admin.id), "project": str(project.id), "batch": str(batch)}


@pytest.mark.parametrize("role", [Role.rater, Role.trainer])
async def test_pages_refuse_non_admins(
    client: httpx.AsyncClient, session: AsyncSession, ids: dict[str, str], role: Role
) -> None:
    _, csrf = await login_as(client, session, role)
    for url in PAGES:
        response = await client.get(url.format(**ids))
        assert response.status_code == 403, url
        assert parse(response.text).find("p", class_="lead").text == ADMINS_ONLY, url
    for url in WRITES:
        response = await client.post(url.format(**ids), data={"csrf_token": csrf})
        assert response.status_code == 403, url


async def test_strangers_are_sent_to_log_in(client: httpx.AsyncClient, ids: dict[str, str]) -> None:
    for url in PAGES:
        response = await client.get(url.format(**ids))
        assert response.status_code == 303, url
        assert response.headers["location"].startswith("/login?next=%2Fadmin%2F"), url
