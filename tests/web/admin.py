"""Helpers for admin page tests: an httpx client logged in through the real login form."""

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Role, User
from tests.factories import PASSWORD, create_user
from tests.web.conftest import csrf_of, page_login

HTMX = {"HX-Request": "true"}


async def login_as(client: httpx.AsyncClient, session: AsyncSession, role: Role = Role.admin) -> tuple[User, str]:
    """A new account of this role, logged in on `client`; returns it and its CSRF token."""
    user = await create_user(session, role=role)
    response = await page_login(client, user.email, PASSWORD)
    assert response.status_code == 303, response.text
    page = await client.get("/", follow_redirects=True)  # a trainer's home is /trainer
    return user, csrf_of(page.text)


def htmx(target: str) -> dict[str, str]:
    """Headers htmx sends when it swaps the element with this id."""
    return {**HTMX, "HX-Target": target, "HX-Current-URL": "http://testserver/"}
