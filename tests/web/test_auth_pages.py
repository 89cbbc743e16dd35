"""Login, logout and page access over plain HTTP (HTML parsed, exact messages)."""

import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Role, UserSession
from server.users import service as users
from server.users.schemas import UserUpdate
from tests.factories import PASSWORD, create_user
from tests.web.conftest import NONCE, csrf_of, page_login


class Text(HTMLParser):
    """The visible text of an HTML document, whitespace collapsed, and whether it parsed."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        return re.sub(r"\s+", " ", " ".join(parser.parts)).strip()


async def post_login(client, email: str, password: str, *, next: str = "/", nonce: str | None = None):  # type: ignore[no-untyped-def]
    form = await client.get("/login")
    found = NONCE.search(form.text)
    assert found is not None
    return await client.post(
        "/login",
        data={"email": email, "password": password, "next": next, "login_nonce": nonce or found.group(1)},
    )


class TestLoginPage:
    async def test_form_has_named_fields(self, client) -> None:
        response = await client.get("/login")
        assert response.status_code == 200
        assert 'name="email"' in response.text
        assert 'name="password"' in response.text
        assert "Content-Security-Policy" in response.headers
        assert response.headers["Server-Timing"].startswith("app;dur=")

    async def test_success_sets_cookie_and_redirects_to_next(self, client, session: AsyncSession) -> None:
        rater = await create_user(session)
        response = await post_login(client, rater.email, PASSWORD, next="/projects/abc/label?x=1")
        assert response.status_code == 303
        assert response.headers["location"] == "/projects/abc/label?x=1"
        assert "assay_session" in response.cookies
        assert await session.scalar(select(func.count()).select_from(UserSession)) == 1

    @pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
    async def test_next_elsewhere_goes_home(self, client, session: AsyncSession, target: str) -> None:
        rater = await create_user(session)
        response = await post_login(client, rater.email, PASSWORD, next=target)
        assert response.headers["location"] == "/"

    async def test_wrong_password_is_refused_inline(self, client, session: AsyncSession) -> None:
        rater = await create_user(session)
        response = await post_login(client, rater.email, "not the password")
        assert response.status_code == 401
        assert "Not done: Wrong email or password." in Text.of(response.text)
        assert f'value="{rater.email}"' in response.text  # the typed email stays
        assert "assay_session" not in response.cookies

    async def test_unknown_email_gets_the_same_message(self, client) -> None:
        response = await post_login(client, "nobody@example.com", PASSWORD)
        assert response.status_code == 401
        assert "Not done: Wrong email or password." in Text.of(response.text)

    async def test_deactivated_account(self, client, session: AsyncSession) -> None:
        rater = await create_user(session)
        admin = await create_user(session, role=Role.admin)
        await users.update(session, rater, UserUpdate(is_active=False), actor=admin)
        await session.commit()
        response = await post_login(client, rater.email, PASSWORD)
        assert response.status_code == 401
        assert "This account is deactivated; ask an admin to reactivate it." in Text.of(response.text)

    async def test_empty_fields(self, client) -> None:
        response = await post_login(client, "", "")
        assert response.status_code == 422
        assert "Not done: Enter your email and your password." in Text.of(response.text)

    async def test_without_the_form_nonce_is_refused(self, client, session: AsyncSession) -> None:
        rater = await create_user(session)
        response = await post_login(client, rater.email, PASSWORD, nonce="forged")
        assert response.status_code == 403
        assert "The login form expired; please enter your email and password again." in Text.of(response.text)
        assert "assay_session" not in response.cookies

    async def test_signed_in_browser_skips_the_form(self, client, session: AsyncSession) -> None:
        rater = await create_user(session)
        await page_login(client, rater.email, PASSWORD)
        response = await client.get("/login", params={"next": "/x"})
        assert response.status_code == 303
        assert response.headers["location"] == "/x"


class TestLogout:
    async def test_logout_ends_the_session(self, client, session: AsyncSession) -> None:
        rater = await create_user(session)
        await page_login(client, rater.email, PASSWORD)
        home = await client.get("/")
        response = await client.post("/logout", data={"csrf_token": csrf_of(home.text)})
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        assert await session.scalar(select(func.count()).select_from(UserSession)) == 0
        after = await client.get("/login")
        assert "You are logged out." in Text.of(after.text)

    async def test_logout_without_csrf_is_refused(self, client, session: AsyncSession) -> None:
        rater = await create_user(session)
        await page_login(client, rater.email, PASSWORD)
        response = await client.post("/logout", data={"csrf_token": "stale"})
        assert response.status_code == 403
        text = Text.of(response.text)
        assert "The form's security token is missing or stale; reload the page and try again." in text
        assert await session.scalar(select(func.count()).select_from(UserSession)) == 1

    async def test_logout_without_session_goes_to_login(self, client) -> None:
        response = await client.post("/logout")
        assert response.status_code == 303
        assert response.headers["location"] == "/login"


class TestPageErrors:
    async def test_unknown_page_is_html(self, client) -> None:
        response = await client.get("/no/such/page")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "There is no page at this address." in Text.of(response.text)

    async def test_unknown_api_path_stays_json(self, client) -> None:
        response = await client.get("/api/v1/no/such")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}

    async def test_htmx_login_required_redirects_the_page(self, client) -> None:
        response = await client.post(
            "/logout", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/projects/p/label"}
        )
        assert response.status_code == 401
        assert response.headers["HX-Redirect"] == "/login?next=%2Fprojects%2Fp%2Flabel"

    async def test_admin_role_sees_admin_nav(self, client, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        await page_login(client, admin.email, PASSWORD)
        home = await client.get("/")
        assert 'href="/admin/projects"' in home.text
        assert 'href="/admin/users"' in home.text
