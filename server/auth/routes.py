"""Login and logout pages."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from server.auth import service, throttle
from server.auth.deps import clear_session_cookie, set_session_cookie
from server.config import settings
from server.db import SessionDep
from server.errors import TooManyRequests, Unauthorized
from server.web.deps import PagePrincipal, safe_next
from server.web.templating import flash, render

router = APIRouter(include_in_schema=False)

# Login has no session yet, so its form is protected by a double-submit token: a random value in
# a cookie that must come back in the form. A page on another site cannot read the cookie, so it
# cannot log a browser into an account of its choosing.
LOGIN_NONCE_COOKIE = "assay_login_nonce"
LOGIN_EXPIRED = "The login form expired; please enter your email and password again."
LOGIN_MISSING = "Enter your email and your password."


def _login_form(
    request: Request, *, next_path: str, email: str = "", error: str | None = None, status_code: int = 200
) -> Response:
    nonce = secrets.token_urlsafe(24)
    context = {"next": next_path, "email": email, "error": error, "login_nonce": nonce}
    response = render(request, "auth/login.html", context, status_code=status_code)
    response.set_cookie(
        LOGIN_NONCE_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict", secure=settings.secure_cookies
    )
    return response


@router.get("/login")
async def login_page(request: Request, session: SessionDep, next: str | None = None) -> Response:
    """The login form; a browser that is already signed in goes straight on."""
    secret = request.cookies.get(settings.session_cookie)
    if secret and await service.user_for_session(session, secret) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(request, next_path=safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    login_nonce: Annotated[str, Form()] = "",
) -> Response:
    """Check the password, open a session and go where the user was heading; errors stay on the form."""
    next_path = safe_next(next)
    cookie_nonce = request.cookies.get(LOGIN_NONCE_COOKIE, "")
    if not cookie_nonce or not secrets.compare_digest(cookie_nonce, login_nonce):
        return _login_form(request, next_path=next_path, email=email, error=LOGIN_EXPIRED, status_code=403)
    if not email.strip() or not password:
        return _login_form(request, next_path=next_path, email=email, error=LOGIN_MISSING, status_code=422)
    try:
        _, secret = await service.login(
            session, email=email, password=password, address=throttle.client_address(request)
        )
    except Unauthorized as exc:  # answered, not raised: the session commits the failure's count and audit entry
        return _login_form(request, next_path=next_path, email=email, error=exc.message, status_code=401)
    except TooManyRequests as exc:
        response = _login_form(request, next_path=next_path, email=email, error=exc.message, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, secret)
    response.delete_cookie(LOGIN_NONCE_COOKIE)
    return response


@router.post("/logout")
async def logout(principal: PagePrincipal, session: SessionDep) -> Response:
    """End this browser session (the form carries the CSRF token)."""
    if principal.session_token:
        await service.logout(session, principal.session_token)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response)
    flash(response, "You are logged out.", kind="success")
    return response
