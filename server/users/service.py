"""Accounts: create, list, update."""

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.errors import Conflict, Invalid, NotFound
from server.models import Role, User, UserKind, UserSession
from server.security import hash_password
from server.users.schemas import UserCreate, UserUpdate


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


async def get(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


async def list_users(session: AsyncSession) -> list[User]:
    """Every account, oldest first."""
    return list(await session.scalars(select(User).order_by(User.created_at, User.email)))


MODEL_ROLE = "A model account is a rater: it judges items; create it with role rater."
MODEL_PASSWORD = "A model account has no password: it cannot log in to pages and judges through the API with a token."
PASSWORD_NEEDED = "A password is needed (at least 8 characters); only model accounts have none."


def _check_kind(data: UserCreate) -> None:
    if data.kind == UserKind.model and data.role != Role.rater:
        raise Invalid(MODEL_ROLE)
    if data.kind == UserKind.model and data.password is not None:
        raise Invalid(MODEL_PASSWORD)
    if data.kind == UserKind.human and data.password is None:
        raise Invalid(PASSWORD_NEEDED)


async def create(session: AsyncSession, data: UserCreate, *, actor: User | None) -> User:
    """Create an account; the email must not be taken (case-insensitively). A model account has no password."""
    _check_kind(data)
    email = data.email.strip()
    if await get_by_email(session, email) is not None:
        raise Conflict(f"A user with email {email} already exists.")
    password_hash = await hash_password(data.password) if data.password is not None else None
    user = User(email=email, name=data.name, role=data.role, kind=data.kind, password_hash=password_hash)
    session.add(user)
    await session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.create",
        target_type="user",
        target_id=user.id,
        data={"email": email, "role": data.role, "kind": data.kind},
    )
    return user


async def update(session: AsyncSession, user: User, data: UserUpdate, *, actor: User) -> User:
    """Change name, role, password or active flag; nobody can lock themselves out."""
    if user.id == actor.id and data.is_active is False:
        raise Invalid("You cannot deactivate your own account; another admin can.")
    if user.id == actor.id and data.role is not None and data.role != user.role:
        raise Invalid("You cannot change your own role; another admin can.")
    if user.kind == UserKind.model and data.password is not None:
        raise Invalid(MODEL_PASSWORD)
    if user.kind == UserKind.model and data.role is not None and data.role != Role.rater:
        raise Invalid(MODEL_ROLE)
    changed = data.model_dump(exclude_none=True, exclude={"password"})  # null: unchanged
    for key, value in changed.items():
        setattr(user, key, value)
    if data.password is not None:
        user.password_hash = await hash_password(data.password)
        changed["password"] = "reset"
    if data.password is not None or data.is_active is False:
        # A reset password or a deactivated account ends every open browser session.
        await session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    await session.flush()
    audit.record(session, actor=actor, action="user.update", target_type="user", target_id=user.id, data=changed)
    return user
