"""Accounts over JSON (admins only)."""

import uuid

from fastapi import APIRouter

from server.auth.deps import AdminPrincipal
from server.db import SessionDep
from server.errors import error_responses
from server.users import service
from server.users.schemas import UserCreate, UserRead, UserUpdate

router = APIRouter(tags=["users"])


@router.get("/users", response_model=list[UserRead])
async def list_users(admin: AdminPrincipal, session: SessionDep) -> object:
    """Every account."""
    return await service.list_users(session)


@router.post(
    "/users", response_model=UserRead, status_code=201, responses=error_responses(described={409: "Email taken."})
)
async def create_user(body: UserCreate, admin: AdminPrincipal, session: SessionDep) -> object:
    """Create an admin, rater or trainer account."""
    return await service.create(session, body, actor=admin.user)


@router.patch("/users/{user_id}", response_model=UserRead)
async def update_user(user_id: uuid.UUID, body: UserUpdate, admin: AdminPrincipal, session: SessionDep) -> object:
    """Rename, change role, reset the password, or deactivate an account."""
    return await service.update(session, await service.get(session, user_id), body, actor=admin.user)
