"""Who is looking at a page: the browser session, as FastAPI dependencies for HTML routes.

Unlike the API's `CurrentPrincipal`, a page without a session redirects to /login (and back
afterwards) instead of answering 401 JSON; bearer tokens are not accepted here.
"""

import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import BackgroundTasks, Depends, Request

from server.auth import activity, service
from server.auth.deps import require_csrf
from server.auth.service import Principal
from server.config import settings
from server.db import SessionDep
from server.errors import Forbidden
from server.models import Scope
from server.security import csrf_token_for


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who the page is for, copied out of the ORM row so that an error page, rendered after the
    request's session was rolled back, can still show the nav."""

    id: uuid.UUID
    email: str
    name: str
    role: str
    is_admin: bool
    csrf_token: str


class LoginRequired(Exception):
    """No valid browser session: send the browser to the login page, then back to `next_path`."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path

    @property
    def login_url(self) -> str:
        return "/login" if self.next_path == "/" else "/login?" + urlencode({"next": self.next_path})


def safe_next(value: str | None) -> str:
    """A same-site path to go to after login; anything else (other hosts, `//evil`, `\\evil`) becomes `/`."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _return_path(request: Request) -> str:
    """Where the user was: the page itself, or for htmx calls the page that made them."""
    current = request.headers.get("HX-Current-URL")
    if current:
        parts = urlsplit(current)
        return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
    if request.method != "GET":
        return "/"
    query = request.url.query
    return safe_next(request.url.path + (f"?{query}" if query else ""))


async def get_page_principal(request: Request, session: SessionDep, background: BackgroundTasks) -> Principal:
    """The signed-in user of a page (CSRF checked on writes); no session → LoginRequired."""
    secret = request.cookies.get(settings.session_cookie)
    found = await service.session_for_secret(session, secret) if secret else None
    if found is None or secret is None:
        raise LoginRequired(_return_path(request))
    user, user_session = found
    activity.remember_session(background, request.app.state.engine, user_session)
    principal = Principal(user=user, session_token=secret)
    request.state.viewer = Viewer(  # templates read it (nav, CSRF token), error pages too
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        is_admin=principal.is_admin,
        csrf_token=csrf_token_for(secret),
    )
    await require_csrf(request, secret)
    return principal


PagePrincipal = Annotated[Principal, Depends(get_page_principal)]


async def _admin_page(principal: PagePrincipal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("This page is for admins. Your account can label the projects shared with it.")
    return principal


async def _rater_page(principal: PagePrincipal) -> Principal:
    if not principal.has_scope(Scope.judgments_write):
        raise Forbidden(f"A {principal.user.role} account cannot label items; ask an admin for a rater account.")
    return principal


async def _export_page(principal: PagePrincipal) -> Principal:
    if not principal.has_scope(Scope.export_read):
        raise Forbidden(f"A {principal.user.role} account cannot export; ask an admin for a trainer account.")
    return principal


AdminPagePrincipal = Annotated[Principal, Depends(_admin_page)]
ExportPagePrincipal = Annotated[Principal, Depends(_export_page)]
RaterPagePrincipal = Annotated[Principal, Depends(_rater_page)]
