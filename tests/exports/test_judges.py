"""Model-resolved labels in exports: `judges=human|model|all` (default human), bound into the cursor (issue 12)."""

from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.exports import cursors
from server.models import Project, Role, Scope
from tests.factories import bearer, create_model, create_project, create_token, create_user, import_items, native_items
from tests.factories import next_item as lease

RULE = {"min_confidence": 0.8, "min_judges": 1, "spot_check_rate": 0.0}


class Handed:
    """Two items: the model resolves x-0 (sure) and hands x-1 to the humans (unsure), whom the human judges."""

    project: Project
    trainer: str


async def judge(client: httpx.AsyncClient, project: Project, token: str, **extra: Any) -> None:
    response = await lease(client, project, token)
    assert response.status_code == 200, response.text
    a = response.json()
    body = {"choice": a["item"]["candidates"][0]["id"], **extra}
    answer = await client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(token))
    assert answer.status_code == 201, answer.text


@pytest.fixture
async def handed(client: httpx.AsyncClient, session: AsyncSession) -> Handed:
    admin = await create_user(session, role=Role.admin)
    human, trainer = await create_user(session), await create_user(session, role=Role.trainer)
    model = await create_model(session)
    project = await create_project(session, admin, members=(human, trainer, model), overlap=1, handoff=RULE)
    await import_items(session, project, admin, native_items(2, prefix="x"))
    model_token, human_token = await create_token(session, model), await create_token(session, human)
    await judge(client, project, model_token, confidence=0.97)
    await judge(client, project, model_token, confidence=0.6)
    await judge(client, project, human_token)
    out = Handed()
    out.project, out.trainer = project, await create_token(session, trainer, Scope.export_read)
    return out


async def pull(client: httpx.AsyncClient, handed: Handed, **params: Any) -> httpx.Response:
    return await client.get(
        f"/api/v1/projects/{handed.project.id}/export", params=params, headers=bearer(handed.trainer)
    )


def rows(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines()]


class TestJudges:
    async def test_per_judgment_the_default_is_humans_only(self, client: httpx.AsyncClient, handed: Handed) -> None:
        assert [(r["external_id"], r["rater_kind"]) for r in rows(await pull(client, handed, format="raw"))] == [
            ("x-1", "human")
        ]
        model = rows(await pull(client, handed, format="raw", judges="model"))
        assert sorted((r["external_id"], r["rater_kind"], r["confidence"]) for r in model) == [
            ("x-0", "model", 0.97),
            ("x-1", "model", 0.6),
        ]
        assert len(rows(await pull(client, handed, format="raw", judges="all"))) == 3

    async def test_per_item_labels_are_marked_with_their_source(
        self, client: httpx.AsyncClient, handed: Handed
    ) -> None:
        def seen(response: httpx.Response) -> list[tuple[str, str, int]]:
            return sorted((r["external_id"], r["label_source"], r["judgments"]) for r in rows(response))

        item = {"format": "raw", "granularity": "item"}
        # The handed-off item's label is the human's alone: the model's unsure verdict never enters it.
        assert seen(await pull(client, handed, **item)) == [("x-1", "human", 1)]
        assert seen(await pull(client, handed, **item, judges="model")) == [("x-0", "model", 1)]
        assert seen(await pull(client, handed, **item, judges="all")) == [("x-0", "model", 1), ("x-1", "human", 1)]
        trl = rows(await pull(client, handed, granularity="item"))
        assert len(trl) == 1  # trainers' pair formats by default: human labels only

    async def test_the_cursor_is_bound_to_judges(self, client: httpx.AsyncClient, handed: Handed) -> None:
        for first, second in (({"judges": "model"}, {}), ({}, {"judges": "all"})):
            cursor = (await pull(client, handed, **first)).headers["Assay-Next-Cursor"]
            response = await pull(client, handed, **second, after=cursor)
            assert (response.status_code, response.json()["detail"]) == (422, cursors.OTHER_FILTERS)
        cursor = (await pull(client, handed)).headers["Assay-Next-Cursor"]
        assert (await pull(client, handed, judges="human", after=cursor)).status_code == 200

    async def test_an_unknown_value_is_refused(self, client: httpx.AsyncClient, handed: Handed) -> None:
        assert (await pull(client, handed, judges="robots")).status_code == 422

    async def test_parquet_has_the_columns(self, client: httpx.AsyncClient, handed: Handed) -> None:
        import io

        import pyarrow.parquet as pq

        response = await pull(client, handed, format="raw", encoding="parquet", judges="all")
        table = pq.read_table(io.BytesIO(response.content))
        assert sorted(table.column("rater_kind").to_pylist()) == ["human", "model", "model"]
        item = await pull(client, handed, format="raw", encoding="parquet", granularity="item", judges="all")
        assert sorted(pq.read_table(io.BytesIO(item.content)).column("label_source").to_pylist()) == ["human", "model"]
