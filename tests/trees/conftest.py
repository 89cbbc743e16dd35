from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, Role, User
from tests.factories import bearer, create_project, create_token, create_user, import_items, next_item

SOURCE = "Section one says the river floods in spring. Section two says the bridge opened in 1990."
SUMMARY_A = "The river floods in spring; the bridge opened in 1990."
SUMMARY_B = "The river floods in autumn; the bridge opened in 1990."


def tree_record(ident: str = "t1", **subtask_extra: Any) -> dict[str, Any]:
    """A comparison of two summaries with a check per summary, a rating and an answer nested in a check."""
    return {
        "id": ident,
        "prompt": SOURCE,
        "responses": [{"text": SUMMARY_A}, {"text": SUMMARY_B}],
        "subtasks": [
            {"kind": "check", "question": "Is the flood season right in A?", "candidate": 0, "span": [4, 26],
             **subtask_extra},
            {"kind": "check", "question": "Is the flood season right in B?", "candidate": 1,
             "subtasks": [{"kind": "answer", "question": "Which season does B name?", "candidate": 1}]},
            {"kind": "rating", "question": "How complete is A?", "candidate": 0, "scale": [1, 5]},
        ],
    }  # fmt: skip


@dataclass
class Setup:
    admin: User
    admin_token: str
    raters: list[User]
    tokens: list[str]
    project: Project


@pytest.fixture
def make_setup(session: AsyncSession):  # type: ignore[no-untyped-def]
    async def build(records: list[dict[str, Any]] | None = None, n_raters: int = 2, **settings: Any) -> Setup:
        admin = await create_user(session, role=Role.admin)
        raters = [await create_user(session) for _ in range(n_raters)]
        project = await create_project(session, admin, members=tuple(raters), **settings)
        if records:
            await import_items(session, project, admin, records)
        tokens = [await create_token(session, r) for r in raters]
        return Setup(admin, await create_token(session, admin), raters, tokens, project)

    return build


async def lease(client: httpx.AsyncClient, s: Setup, rater: int = 0) -> dict[str, Any] | None:
    response = await next_item(client, s.project, s.tokens[rater])
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def answer(client: httpx.AsyncClient, token: str, assignment: dict[str, Any], **body: Any) -> httpx.Response:
    kind = assignment["item"]["kind"]
    if not body:
        if kind == "comparison":
            body = {"choice": assignment["item"]["candidates"][0]["id"]}
        else:
            body = {"answer": {"check": "yes", "rating": 4, "answer": "Autumn"}[kind]}
    return await client.post(f"/api/v1/assignments/{assignment['id']}/judgment", json=body, headers=bearer(token))
