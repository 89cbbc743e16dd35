"""Plain async factories: create_*(session, **overrides), committed so the app sees them."""

import io
import uuid
from datetime import datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import service as auth
from server.batches import service as batches
from server.batches.formats import Encoding, ImportFormat
from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Judgment, Project, Role, Scope, User, UserKind
from server.projects import service as projects
from server.projects.schemas import ProjectCreate
from server.users import service as users
from server.users.schemas import UserCreate

PASSWORD = "correct horse battery"


async def create_user(session: AsyncSession, *, role: Role = Role.rater, email: str | None = None) -> User:
    email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    user = await users.create(session, UserCreate(email=email, password=PASSWORD, role=role), actor=None)
    await session.commit()
    return user


async def create_model(session: AsyncSession, *, email: str | None = None) -> User:
    """A model judge's account (role rater, kind model, no password)."""
    email = email or f"model-{uuid.uuid4().hex[:8]}@example.com"
    data = UserCreate(email=email, role=Role.rater, kind=UserKind.model)
    user = await users.create(session, data, actor=None)
    await session.commit()
    return user


async def create_token(session: AsyncSession, user: User, *scopes: Scope, days: int | None = None) -> str:
    if not scopes:
        scopes = {
            Role.admin: (Scope.admin,),
            Role.rater: (Scope.judgments_write,),
            Role.trainer: (Scope.export_read,),
        }[Role(user.role)]
    _, secret = await auth.create_token(
        session, user=user, name="test", scopes=list(scopes), expires_in_days=days, actor=user
    )
    await session.commit()
    return secret


async def create_project(
    session: AsyncSession, admin: User, *, members: tuple[User, ...] = (), **settings: Any
) -> Project:
    project = await projects.create(
        session, ProjectCreate(name=settings.pop("name", "Test project"), **settings), actor=admin
    )
    for member in members:
        await projects.add_member(session, project, member.id, actor=admin)
    await session.commit()
    return project


def native_items(n: int, *, start: int = 0, candidates: int = 2, prefix: str = "item") -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}-{i}",
            "prompt": f"Question number {i}?",
            "responses": [{"text": f"Answer {c} to {i}", "model": f"model-{c}"} for c in range(candidates)],
        }
        for i in range(start, start + n)
    ]


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


async def import_items(
    session: AsyncSession, project: Project, admin: User, records: list[dict[str, Any]], *, priority: int = 0
) -> uuid.UUID:
    result = await batches.import_file(
        session,
        project=project,
        file=io.BytesIO(jsonl(records)),
        filename="items.jsonl",
        name=None,
        format=ImportFormat.NATIVE,
        encoding=Encoding.JSONL,
        priority=priority,
        actor=admin,
    )
    await session.commit()
    assert result.id is not None
    return result.id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def next_item(client: httpx.AsyncClient, project: Project, token: str) -> httpx.Response:
    return await client.post(f"/api/v1/projects/{project.id}/assignments/next", headers=bearer(token))


async def create_judgment(
    session: AsyncSession, project: Project, rater: User, *, active_ms: int | None = None, at: datetime | None = None
) -> Judgment:
    """Lease the rater's next item and prefer its first shown candidate; `at` backdates the judgment."""
    leased = await labeling.next_assignment(session, project=project, rater=rater)
    assert leased is not None, "no item left to judge"
    submitted = await labeling.submit(
        session,
        assignment_id=leased.assignment.id,
        rater=rater,
        data=JudgmentCreate(
            choice=leased.candidates[0].id,
            strength=None if project.scale == "binary" else 1,
            active_ms=active_ms,
        ),
    )
    if at is not None:
        await session.execute(update(Judgment).where(Judgment.id == submitted.judgment.id).values(created_at=at))
    await session.commit()
    return submitted.judgment
