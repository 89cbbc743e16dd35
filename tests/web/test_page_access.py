"""Page dependencies: redirect to login without a session, 403 pages for the wrong role."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.app import create_app
from server.models import Role
from server.web.deps import AdminPagePrincipal, RaterPagePrincipal
from tests.factories import PASSWORD, create_user
from tests.web.conftest import page_login
from tests.web.test_auth_pages import Text


@pytest.fixture
async def guarded(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus two pages behind the admin and rater page guards."""
    app = create_app(database_url="unused")
    app.state.engine, app.state.sessionmaker = engine, sessionmaker
    router = APIRouter()

    @router.get("/guarded/admin")
    async def admin_only(principal: AdminPagePrincipal) -> dict[str, str]:
        return {"email": principal.user.email}

    @router.get("/guarded/rater")
    async def rater_only(principal: RaterPagePrincipal) -> dict[str, str]:
        return {"email": principal.user.email}

    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


class TestGuards:
    async def test_no_session_redirects_to_login_with_next(self, guarded: httpx.AsyncClient) -> None:
        response = await guarded.get("/guarded/admin", params={"tab": "1"})
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fguarded%2Fadmin%3Ftab%3D1"

    async def test_home_without_session_goes_to_plain_login(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/")
        assert response.status_code == 303
        assert response.headers["location"] == "/login"

    async def test_rater_gets_403_page_on_admin_page(self, guarded: httpx.AsyncClient, session: AsyncSession) -> None:
        rater = await create_user(session)
        await page_login(guarded, rater.email, PASSWORD)
        response = await guarded.get("/guarded/admin")
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        text = Text.of(response.text)
        assert "This page is for admins. Your account can label the projects shared with it." in text
        assert "Log out" in text  # the nav is still there

    async def test_admin_passes(self, guarded: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        await page_login(guarded, admin.email, PASSWORD)
        assert (await guarded.get("/guarded/admin")).json() == {"email": admin.email}

    async def test_trainer_cannot_open_rater_pages(self, guarded: httpx.AsyncClient, session: AsyncSession) -> None:
        trainer = await create_user(session, role=Role.trainer)
        await page_login(guarded, trainer.email, PASSWORD)
        response = await guarded.get("/guarded/rater")
        assert response.status_code == 403
        assert "A trainer account cannot label items; ask an admin for a rater account." in Text.of(response.text)

    async def test_htmx_error_goes_to_flash(self, guarded: httpx.AsyncClient, session: AsyncSession) -> None:
        rater = await create_user(session)
        await page_login(guarded, rater.email, PASSWORD)
        response = await guarded.get("/guarded/admin", headers={"HX-Request": "true"})
        assert response.status_code == 403
        assert response.headers["HX-Retarget"] == "#flash"
        assert response.text.startswith('<p class="flash flash-error" role="alert">This page is for admins.')
