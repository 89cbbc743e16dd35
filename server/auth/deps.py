"""Who is calling, as FastAPI dependencies: `CurrentPrincipal`, `AdminPrincipal`, scope guards."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request, Response

from server.auth import activity, service
from server.auth.service import Principal
from server.config import settings
from server.db import SessionDep
from server.errors import Forbidden, Unauthorized
from server.models import Scope
from server.security import csrf_matches

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_REFUSED = "The form's security token is missing or stale; reload the page and try again."


def set_session_cookie(response: Response, secret: str) -> None:
    """Hand the browser its session secret (HttpOnly, SameSite=Lax, Secure in production)."""
    response.set_cookie(
        settings.session_cookie,
        secret,
        max_age=settings.session_days * 86400,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(settings.session_cookie, httponly=True, samesite="lax", secure=settings.secure_cookies)


async def get_principal(request: Request, session: SessionDep, background: BackgroundTasks) -> Principal:
    """A bearer token if one is sent, else the browser session cookie (with CSRF on writes).

    Its last use is recorded after the response (server/auth/activity.py)."""
    authorization = request.headers.get("Authorization")
    if authorization:
        scheme, _, bearer = authorization.partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
        principal = await service.principal_for_token(session, bearer.strip())
        if principal.token is not None:
            activity.remember_token(background, request.app.state.engine, principal.token)
        return principal
    cookie = request.cookies.get(settings.session_cookie)
    if not cookie:
        raise Unauthorized("Log in first, or send an API token as 'Authorization: Bearer <token>'.")
    found = await service.session_for_secret(session, cookie)
    if found is None:
        raise Unauthorized("Your session has expired; log in again.")
    await require_csrf(request, cookie)
    user, user_session = found
    activity.remember_session(background, request.app.state.engine, user_session)
    return Principal(user=user, session_token=cookie)


async def require_csrf(request: Request, session_secret: str) -> None:
    """On a write, the CSRF token bound to this session must come as a header or a `csrf_token` form field."""
    if request.method in SAFE_METHODS:
        return
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        presented = str((await request.form()).get("csrf_token") or "") or None
    if not csrf_matches(session_secret, presented):
        raise Forbidden(CSRF_REFUSED)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def scoped(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: CurrentPrincipal) -> Principal:
        service.require_scope(principal, scope)
        return principal

    return dependency


async def _admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("Only admins can do this.")
    service.require_scope(principal, Scope.admin)
    return principal


AdminPrincipal = Annotated[Principal, Depends(_admin)]
RaterPrincipal = Annotated[Principal, Depends(scoped(Scope.judgments_write))]
ExportPrincipal = Annotated[Principal, Depends(scoped(Scope.export_read))]
