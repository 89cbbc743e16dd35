"""Accounts and tokens through the service layer (as tests/factories.py does), projects through the API."""

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

PASSWORD = "bench password not secret"


@dataclass(frozen=True)
class Account:
    id: str
    token: str
    email: str = ""


@dataclass(frozen=True)
class Accounts:
    admin: Account
    trainer: Account
    probe: Account  # the single rater of the queue-size probe, apart from the 100 so it never skews them
    raters: list[Account]


async def _create(session: Any, role: Any, scopes: list[Any], tag: str) -> Account:
    from server.auth import service as auth
    from server.users import service as users
    from server.users.schemas import UserCreate

    email = f"{tag}@bench.example.com"
    user = await users.create(session, UserCreate(email=email, password=PASSWORD, role=role), actor=None)
    _, secret = await auth.create_token(session, user=user, name="bench", scopes=scopes, expires_in_days=1, actor=user)
    return Account(id=str(user.id), token=secret, email=email)


async def create_accounts(database_url: str, raters: int) -> Accounts:
    """An admin, a trainer (export:read), a probe rater and `raters` raters, each with a token."""
    from server.db import make_engine, make_sessionmaker
    from server.models import Role, Scope

    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    run = uuid.uuid4().hex[:6]
    try:
        async with make_sessionmaker(engine)() as session:
            admin = await _create(session, Role.admin, [Scope.admin], f"admin-{run}")
            trainer = await _create(session, Role.trainer, [Scope.export_read], f"trainer-{run}")
            probe = await _create(session, Role.rater, [Scope.judgments_write], f"probe-{run}")
            crowd = [
                await _create(session, Role.rater, [Scope.judgments_write], f"rater{i:03d}-{run}")
                for i in range(raters)
            ]
            await session.commit()
    finally:
        await engine.dispose()
    return Accounts(admin=admin, trainer=trainer, probe=probe, raters=crowd)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_project(client: httpx.AsyncClient, admin: Account, name: str, members: list[Account]) -> str:
    """A project (overlap 1, the default) shared with `members`, through the admin API."""
    response = await client.post("/api/v1/projects", json={"name": name}, headers=bearer(admin.token))
    response.raise_for_status()
    project_id = str(response.json()["id"])
    limit = asyncio.Semaphore(8)

    async def add(member: Account) -> None:
        async with limit:
            added = await client.post(
                f"/api/v1/projects/{project_id}/members", json={"user_id": member.id}, headers=bearer(admin.token)
            )
            added.raise_for_status()

    await asyncio.gather(*(add(m) for m in members))
    return project_id
