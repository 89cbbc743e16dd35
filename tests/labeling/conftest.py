from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, Role, User
from tests.factories import create_project, create_token, create_user, import_items, native_items


@dataclass
class Setup:
    admin: User
    raters: list[User]
    tokens: list[str]
    project: Project


@pytest.fixture
def make_setup(session: AsyncSession):  # type: ignore[no-untyped-def]
    async def build(n_items: int = 3, n_raters: int = 2, candidates: int = 2, **settings: Any) -> Setup:
        admin = await create_user(session, role=Role.admin)
        raters = [await create_user(session) for _ in range(n_raters)]
        project = await create_project(session, admin, members=tuple(raters), **settings)
        if n_items:
            await import_items(session, project, admin, native_items(n_items, candidates=candidates))
        tokens = [await create_token(session, r) for r in raters]
        return Setup(admin=admin, raters=raters, tokens=tokens, project=project)

    return build
