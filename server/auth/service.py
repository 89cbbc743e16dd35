"""Logins, browser sessions and API tokens."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.config import settings
from server.errors import Forbidden, Invalid, NotFound, Unauthorized
from server.models import ApiToken, Role, Scope, User, UserSession
from server.security import (
    API_TOKEN_PREFIX,
    SESSION_TOKEN_PREFIX,
    generate_token,
    token_digest,
    verify_password,
)
from server.users import service as users

# What each role may put in a token; a token never grants more than its user's role.
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.admin: frozenset(Scope),
    Role.rater: frozenset({Scope.judgments_write}),
    Role.trainer: frozenset({Scope.export_read, Scope.reward_models_write, Scope.items_write}),
}
# A browser session may do what its role may, except that a trainer's cannot import items: only
# a token an admin ticked `items:write` on can (no page needs it).
SESSION_SCOPES: dict[Role, frozenset[Scope]] = {
    role: scopes - {Scope.items_write} if role == Role.trainer else scopes for role, scopes in ROLE_SCOPES.items()
}
# `last_used_at` is written at most this often, so a busy token does not add a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user, through a browser session or an API token."""

    user: User
    token: ApiToken | None = None
    session_token: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.user.role == Role.admin

    def has_scope(self, scope: Scope) -> bool:
        if self.token is None:
            return scope in SESSION_SCOPES[Role(self.user.role)]
        if scope not in ROLE_SCOPES[Role(self.user.role)]:
            return False
        return scope in self.token.scopes or Scope.admin in self.token.scopes


def _now() -> datetime:
    return datetime.now(UTC)


async def login(session: AsyncSession, *, email: str, password: str) -> tuple[User, str]:
    """Check a password and open a browser session; returns the user and the session secret."""
    user = await users.get_by_email(session, email)
    if not verify_password(password, user.password_hash if user else None) or user is None:
        raise Unauthorized("Wrong email or password.")
    if not user.is_active:
        raise Unauthorized("This account is deactivated; ask an admin to reactivate it.")
    secret = generate_token(SESSION_TOKEN_PREFIX)
    expires = _now() + timedelta(days=settings.session_days)
    session.add(UserSession(user_id=user.id, token_hash=token_digest(secret), expires_at=expires))
    await session.flush()
    return user, secret


async def logout(session: AsyncSession, secret: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.token_hash == token_digest(secret)))


async def user_for_session(session: AsyncSession, secret: str) -> User | None:
    """The user behind a browser session secret, or None when it is unknown or expired."""
    row = await session.execute(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.token_hash == token_digest(secret), UserSession.expires_at > _now())
    )
    user = row.scalar_one_or_none()
    return user if user is not None and user.is_active else None


async def principal_for_token(session: AsyncSession, secret: str) -> Principal:
    """Resolve a bearer token, refusing unknown, revoked and expired ones with the reason."""
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_digest(secret))
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized("Invalid API token: no such token. Check that you copied all of it.")
    token, user = row
    now = _now()
    if token.revoked_at is not None:
        raise Unauthorized(f"This API token was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC.")
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthorized(f"This API token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC.")
    if not user.is_active:
        raise Unauthorized("The account this API token belongs to is deactivated.")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
        await session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    return Principal(user=user, token=token)


async def create_token(
    session: AsyncSession,
    *,
    user: User,
    name: str,
    scopes: list[Scope],
    expires_in_days: int | None,
    actor: User,
) -> tuple[ApiToken, str]:
    """Create a token for a user; returns it with its secret, which is never stored."""
    allowed = ROLE_SCOPES[Role(user.role)]
    refused = sorted(s.value for s in scopes if s not in allowed)
    if refused:
        raise Invalid(
            f"A {user.role} cannot hold the scope(s) {', '.join(refused)}; "
            f"allowed for this role: {', '.join(sorted(s.value for s in allowed))}."
        )
    secret = generate_token(API_TOKEN_PREFIX)
    token = ApiToken(
        user_id=user.id,
        name=name,
        prefix=secret[: len(API_TOKEN_PREFIX) + 6],
        token_hash=token_digest(secret),
        scopes=sorted({s.value for s in scopes}),
        expires_at=_now() + timedelta(days=expires_in_days) if expires_in_days else None,
        created_by_id=actor.id,
    )
    session.add(token)
    await session.flush()
    await session.refresh(token)
    audit.record(
        session,
        actor=actor,
        action="token.create",
        target_type="api_token",
        target_id=token.id,
        data={"user_id": str(user.id), "scopes": token.scopes},
    )
    return token, secret


async def list_tokens(session: AsyncSession, user: User) -> list[ApiToken]:
    return list(
        await session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at))
    )


async def revoke_token(session: AsyncSession, token_id: uuid.UUID, *, actor: User) -> ApiToken:
    """Revoke a token; revoking twice keeps the first time."""
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No API token with id {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = _now()
        audit.record(session, actor=actor, action="token.revoke", target_type="api_token", target_id=token.id)
    await session.flush()
    return token


def require_scope(principal: Principal, scope: Scope) -> None:
    if not principal.has_scope(scope):
        if scope not in ROLE_SCOPES[Role(principal.user.role)]:
            raise Forbidden(f"This needs the '{scope}' scope, which a {principal.user.role} account cannot have.")
        if principal.token is None:
            raise Forbidden(
                f"A {principal.user.role}'s browser session cannot use the '{scope}' scope; "
                "use an API token an admin gave that scope."
            )
        raise Forbidden(f"This API token lacks the '{scope}' scope; create a token that has it.")
