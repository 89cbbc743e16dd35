"""Logins, browser sessions and API tokens."""

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Interval, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.auth import throttle
from server.config import settings
from server.errors import Forbidden, Invalid, NotFound, Unauthorized
from server.models import ApiToken, Role, Scope, User, UserKind, UserSession
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
WRONG_PASSWORD = "Wrong email or password."
MODEL_LOGIN = (
    "This is a model judge's account: it has no password and cannot log in; it judges through the API with a token."
)
DEACTIVATED = "This account is deactivated; ask an admin to reactivate it."
logger = logging.getLogger("assay.auth")
# A browser session may do what its role may, except that a trainer's cannot import items: only
# a token an admin ticked `items:write` on can (no page needs it).
SESSION_SCOPES: dict[Role, frozenset[Scope]] = {
    role: scopes - {Scope.items_write} if role == Role.trainer else scopes for role, scopes in ROLE_SCOPES.items()
}


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


async def login(session: AsyncSession, *, email: str, password: str, address: str) -> tuple[User, str]:
    """Check a password and open a browser session; returns the user and the session secret.

    Throttled accounts and addresses are refused before the password is checked (429). A wrong
    password is counted (server/auth/throttle.py) and written to the audit log, never the password
    itself; the caller commits those even though the answer is a 401.
    """
    await throttle.check(session, email=email, address=address)
    user = await users.get_by_email(session, email)
    if user is not None and user.kind == UserKind.model:
        await verify_password(password, None)  # the same time as a wrong password
        _record_refusal(session, user, email=email, address=address, reason="model account")
        raise Unauthorized(MODEL_LOGIN)
    if not await verify_password(password, user.password_hash if user else None) or user is None:
        await throttle.record_failure(session, email=email, address=address)
        _record_refusal(session, user, email=email, address=address, reason="wrong email or password")
        raise Unauthorized(WRONG_PASSWORD)
    if not user.is_active:
        _record_refusal(session, user, email=email, address=address, reason="deactivated account")
        raise Unauthorized(DEACTIVATED)
    await throttle.forget_account(session, email)
    secret = generate_token(SESSION_TOKEN_PREFIX)
    expires = _now() + timedelta(days=settings.session_days)
    session.add(UserSession(user_id=user.id, token_hash=token_digest(secret), expires_at=expires))
    await session.flush()
    return user, secret


def _record_refusal(session: AsyncSession, user: User | None, *, email: str, address: str, reason: str) -> None:
    email = throttle.account_key(email)
    logger.warning("login refused (%s) for %r from %s", reason, email, address)
    audit.record(
        session,
        actor=None,
        action="login.failed",
        target_type="user",
        target_id=user.id if user else None,
        data={"email": email, "address": address, "reason": reason},
    )


async def logout(session: AsyncSession, secret: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.token_hash == token_digest(secret)))


# Every request looks up its caller with one of these two, built once (a select built per call costs
# tens of microseconds of the request's CPU; the SQL is the same).
_SESSION_BY_HASH = (
    select(User, UserSession)
    .join(UserSession, UserSession.user_id == User.id)
    .where(
        UserSession.token_hash == bindparam("token_hash"),
        UserSession.expires_at > func.now(),
        UserSession.last_seen_at > func.now() - bindparam("idle", type_=Interval()),
    )
)
_TOKEN_BY_HASH = (
    select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == bindparam("token_hash"))
)


async def session_for_secret(session: AsyncSession, secret: str) -> tuple[User, UserSession] | None:
    """The user and session behind a browser session secret; None when it is unknown, expired,
    idle for longer than `session_idle_hours`, or its user is deactivated."""
    idle = timedelta(hours=settings.session_idle_hours)
    row = (await session.execute(_SESSION_BY_HASH, {"token_hash": token_digest(secret), "idle": idle})).one_or_none()
    if row is None or not row[0].is_active:
        return None
    return row[0], row[1]


async def user_for_session(session: AsyncSession, secret: str) -> User | None:
    """The user behind a browser session secret, or None (see `session_for_secret`)."""
    found = await session_for_secret(session, secret)
    return found[0] if found else None


async def principal_for_token(session: AsyncSession, secret: str) -> Principal:
    """Resolve a bearer token, refusing unknown, revoked and expired ones with the reason.

    Reads only: `last_used_at` is written after the response (server/auth/activity.py), so this
    request's transaction holds no lock on the token's row.
    """
    row = (await session.execute(_TOKEN_BY_HASH, {"token_hash": token_digest(secret)})).one_or_none()
    if row is None:
        raise Unauthorized("Invalid API token: no such token. Check that you copied all of it.")
    token, user = row
    if token.revoked_at is not None:
        raise Unauthorized(f"This API token was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC.")
    if token.expires_at is not None and token.expires_at <= _now():
        raise Unauthorized(f"This API token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC.")
    if not user.is_active:
        raise Unauthorized("The account this API token belongs to is deactivated.")
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


def is_live(token: ApiToken, now: datetime) -> bool:
    """Neither revoked nor expired."""
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


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


async def revoke_all_tokens(session: AsyncSession, user: User, *, actor: User) -> int:
    """Revoke every live token of an account at once (after a leaked password, say); returns how many."""
    revoked = await session.scalars(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiToken.id)
    )
    count = len(revoked.all())
    audit.record(
        session, actor=actor, action="token.revoke_all", target_type="user", target_id=user.id, data={"count": count}
    )
    await session.flush()
    return count


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
