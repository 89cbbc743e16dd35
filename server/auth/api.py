"""Sessions and API tokens over JSON."""

import uuid

from fastapi import APIRouter, Request, Response

from server.auth import service, throttle
from server.auth.deps import AdminPrincipal, CurrentPrincipal, clear_session_cookie, set_session_cookie
from server.auth.schemas import LoginRequest, SessionRead, TokenCreate, TokenCreated, TokenRead, TokensRevoked
from server.db import SessionDep
from server.errors import Unauthorized, error_responses
from server.security import csrf_token_for
from server.users import service as users
from server.users.schemas import UserRead

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/session",
    response_model=SessionRead,
    responses=error_responses(429, described={401: "Wrong email or password."}),
)
async def login(body: LoginRequest, request: Request, response: Response, session: SessionDep) -> SessionRead:
    """Log in with email and password; sets the session cookie and returns the CSRF token.

    After too many wrong passwords for an account or from an address, logins are refused for a
    while with 429 and `Retry-After` (seconds)."""
    try:
        user, secret = await service.login(
            session, email=body.email, password=body.password, address=throttle.client_address(request)
        )
    except Unauthorized:
        await session.commit()  # the failure's count and audit entry stay, though the answer is 401
        raise
    set_session_cookie(response, secret)
    return SessionRead(user=UserRead.model_validate(user), csrf_token=csrf_token_for(secret))


@router.delete("/auth/session", status_code=204)
async def logout(principal: CurrentPrincipal, request: Request, response: Response, session: SessionDep) -> None:
    """End the browser session."""
    if principal.session_token:
        await service.logout(session, principal.session_token)
    clear_session_cookie(response)


@router.get("/auth/me", response_model=UserRead)
async def me(principal: CurrentPrincipal) -> object:
    """The calling user."""
    return principal.user


@router.post("/users/{user_id}/tokens", response_model=TokenCreated, status_code=201)
async def create_token(
    user_id: uuid.UUID, body: TokenCreate, admin: AdminPrincipal, session: SessionDep
) -> TokenCreated:
    """Create an API token for a user; the secret is in this response only."""
    user = await users.get(session, user_id)
    token, secret = await service.create_token(
        session,
        user=user,
        name=body.name,
        scopes=body.scopes,
        expires_in_days=body.expires_in_days,
        actor=admin.user,
    )
    return TokenCreated.model_validate({**TokenRead.model_validate(token).model_dump(), "token": secret})


@router.get("/users/{user_id}/tokens", response_model=list[TokenRead])
async def list_tokens(user_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep) -> object:
    """A user's tokens (prefixes only), with last use."""
    return await service.list_tokens(session, await users.get(session, user_id))


@router.delete("/users/{user_id}/tokens", response_model=TokensRevoked)
async def revoke_all_tokens(user_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep) -> TokensRevoked:
    """Revoke every live token of a user at once (a password reset leaves them working)."""
    count = await service.revoke_all_tokens(session, await users.get(session, user_id), actor=admin.user)
    return TokensRevoked(revoked=count)


@router.delete("/tokens/{token_id}", response_model=TokenRead)
async def revoke_token(token_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep) -> object:
    """Revoke a token at once; requests with it then get 401."""
    return await service.revoke_token(session, token_id, actor=admin.user)
