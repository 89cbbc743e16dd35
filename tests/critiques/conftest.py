from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, Role, User
from tests.factories import create_project, create_token, create_user, import_items

EMOJI_TEXT = "Paris 😀 is the capital of Italy."  # [8, 13) is "is th"; the emoji is one code point


def critiqued_items(n: int, *, prefix: str = "item") -> list[dict[str, Any]]:
    """Items whose first response carries a critique with a span (after an emoji) and a severity."""
    return [
        {
            "id": f"{prefix}-{i}",
            "prompt": f"What is the capital of France? ({i})",
            "responses": [{"text": EMOJI_TEXT, "model": "m-0"}, {"text": f"Paris. ({i})", "model": "m-1"}],
            "critiques": [
                {
                    "candidate": 0,
                    "text": "Paris is in France, not Italy.",
                    "author": "critic-1",
                    "span": [26, 32],
                    "severity": "major",
                },
            ],
        }
        for i in range(n)
    ]


@dataclass
class Setup:
    admin: User
    admin_token: str
    raters: list[User]
    tokens: list[str]
    project: Project


@pytest.fixture
def make_setup(session: AsyncSession):  # type: ignore[no-untyped-def]
    async def build(n_items: int = 3, n_raters: int = 2, **settings: Any) -> Setup:
        admin = await create_user(session, role=Role.admin)
        raters = [await create_user(session) for _ in range(n_raters)]
        project = await create_project(session, admin, members=tuple(raters), **settings)
        if n_items:
            await import_items(session, project, admin, critiqued_items(n_items))
        tokens = [await create_token(session, r) for r in raters]
        return Setup(admin, await create_token(session, admin), raters, tokens, project)

    return build
