"""Revised judgments in exports: a trainer replaying incremental pulls ends with exactly the latest verdicts."""

import io
import uuid
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Candidate, Judgment, Role, Scope
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items, next_item

PAIR_FORMATS = ("trl", "trl-unpaired", "openai", "hh")


class Consumer:
    """What the formats docs tell a trainer to do: per judgment_id, keep the rows of the highest
    revision; a deleted revision drops them."""

    def __init__(self, fmt: str, **params: str) -> None:
        self.fmt, self.params = fmt, params
        self.cursor: str | None = None
        self.kept: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self.key = "item_id" if params.get("granularity") == "item" else "judgment_id"

    async def pull(self, client: httpx.AsyncClient, project: Any, token: str) -> httpx.Response:
        params = {"format": self.fmt, "ids": "true", **self.params} | ({"after": self.cursor} if self.cursor else {})
        response = await client.get(f"/api/v1/projects/{project.id}/export", params=params, headers=bearer(token))
        assert response.status_code == 200, response.text
        self.cursor = response.headers["Assay-Next-Cursor"]
        fresh: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        revision_column = "aggregate_revision" if self.key == "item_id" else "revision"
        for line in response.content.splitlines():
            row = orjson.loads(line)
            key, revision = row[self.key], row[revision_column]
            rows = fresh.setdefault(key, (revision, []))[1]
            if not row["deleted"]:
                rows.append(row)
        for key, (revision, rows) in fresh.items():
            if key not in self.kept or revision > self.kept[key][0]:
                self.kept[key] = (revision, rows)
        return response

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        return {key: rows for key, (_, rows) in self.kept.items() if rows}


async def _setup(session: AsyncSession, n: int):  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    trainer = await create_user(session, role=Role.trainer)
    project = await create_project(session, admin, members=(rater, trainer), allow_tie=True, allow_both_bad=True)
    await import_items(session, project, admin, native_items(n))
    return project, await create_token(session, rater), await create_token(session, trainer, Scope.export_read)


async def _judge(client: httpx.AsyncClient, project: Any, token: str, count: int) -> list[dict[str, Any]]:
    made = []
    for _ in range(count):
        a = (await next_item(client, project, token)).json()
        body = {"choice": a["item"]["candidates"][0]["id"]}
        response = await client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(token))
        assert response.status_code == 201
        made.append(response.json() | {"candidates": [c["id"] for c in a["item"]["candidates"]]})
    return made


async def _revise(client: httpx.AsyncClient, token: str, judgment: dict[str, Any], **body: Any) -> None:
    response = await client.patch(f"/api/v1/judgments/{judgment['id']}", json=body, headers=bearer(token))
    assert response.status_code == 200, response.text


async def _texts(session: AsyncSession) -> dict[uuid.UUID, str]:
    return {c.id: c.text or "" for c in await session.scalars(select(Candidate))}


class TestReplay:
    async def test_incremental_pulls_with_revisions_between_end_with_the_latest_verdicts(self, client, session) -> None:
        project, rater, trainer = await _setup(session, n=6)
        consumers = [Consumer(f) for f in (*PAIR_FORMATS, "raw")]

        async def pull_all() -> None:
            for consumer in consumers:
                await consumer.pull(client, project, trainer)

        made = await _judge(client, project, rater, 4)
        await pull_all()
        # Flip one, make one a tie (no pair row: a deleted marker), make one both-bad without a choice.
        await _revise(client, rater, made[0], choice=made[0]["candidates"][1])
        await _revise(client, rater, made[1], tie=True)
        await _revise(client, rater, made[2], both_bad=True)
        made += await _judge(client, project, rater, 2)
        await pull_all()
        # A tie becomes a choice again, a flipped one flips back, then a pull with nothing new.
        await _revise(client, rater, made[1], choice=made[1]["candidates"][1])
        await _revise(client, rater, made[0], choice=made[0]["candidates"][0], rationale="first was right")
        await _revise(client, rater, made[4], tie=True)
        await pull_all()
        await pull_all()

        texts = await _texts(session)
        latest = {str(j.id): j for j in await session.scalars(select(Judgment))}
        assert {str(j.revision) for j in latest.values()} == {"1", "2", "3"}
        trl, unpaired, openai, hh, raw = (c.rows() for c in consumers)
        # raw: one row per judgment, its latest revision, every field as stored.
        assert {k: (r[0]["revision"], r[0]["choice"], r[0]["tie"], r[0]["both_bad"]) for k, r in raw.items()} == {
            k: (j.revision, None if j.choice_id is None else str(j.choice_id), j.tie, j.both_bad)
            for k, j in latest.items()
        }
        # Pair formats: exactly the judgments whose latest verdict has a choice, with that choice.
        chosen = {k: texts[j.choice_id] for k, j in latest.items() if j.choice_id is not None}
        assert {k: [r["chosen"] for r in rows] for k, rows in trl.items()} == {k: [t] for k, t in chosen.items()}
        assert {k: [r["preferred_output"][0]["content"] for r in rows] for k, rows in openai.items()} == {
            k: [t] for k, t in chosen.items()
        }
        assert {k: len(rows) for k, rows in hh.items()} == {k: 1 for k in chosen}
        assert all(rows[0]["chosen"].endswith(chosen[k]) for k, rows in hh.items())
        # Unpaired: two rows per choice; the both-bad judgment says "bad" for each candidate.
        both_bad = {k for k, j in latest.items() if j.both_bad and j.choice_id is None}
        assert set(unpaired) == set(chosen) | both_bad
        for k in both_bad:
            assert [r["label"] for r in unpaired[k]] == [False, False]
        for k, text in chosen.items():
            assert {(r["completion"], r["label"]) for r in unpaired[k] if r["label"]} == {(text, True)}
        # Every pull's rows equal a fresh full pull's: the replay lost and added nothing.
        for consumer in consumers:
            fresh = Consumer(consumer.fmt)
            await fresh.pull(client, project, trainer)
            assert fresh.rows() == consumer.rows()

    async def test_a_tie_revision_voids_the_old_rows_with_one_deleted_row(self, client, session) -> None:
        project, rater, trainer = await _setup(session, n=1)
        (made,) = await _judge(client, project, rater, 1)
        consumer = Consumer("trl")
        first = await consumer.pull(client, project, trainer)
        assert [orjson.loads(x)["revision"] for x in first.content.splitlines()] == [1]
        await _revise(client, rater, made, tie=True)
        second = await consumer.pull(client, project, trainer)
        assert [orjson.loads(x) for x in second.content.splitlines()] == [
            {"judgment_id": made["id"], "revision": 2, "deleted": True}
        ]
        assert consumer.rows() == {}

    async def test_parquet_carries_the_id_columns_and_a_deleted_row(self, client, session) -> None:
        project, rater, trainer = await _setup(session, n=2)
        made = await _judge(client, project, rater, 2)
        await _revise(client, rater, made[0], tie=True)
        params = {"format": "trl", "ids": "true", "encoding": "parquet"}
        response = await client.get(f"/api/v1/projects/{project.id}/export", params=params, headers=bearer(trainer))
        table = pq.read_table(io.BytesIO(response.content))
        assert table.column_names == ["prompt", "chosen", "rejected", "judgment_id", "revision", "deleted"]
        rows = sorted(table.to_pylist(), key=lambda r: r["revision"])
        assert [(r["judgment_id"], r["revision"], r["deleted"], r["chosen"] is None) for r in rows] == [
            (made[1]["id"], 1, False, False),
            (made[0]["id"], 2, True, True),
        ]
        raw = await client.get(
            f"/api/v1/projects/{project.id}/export",
            params={"format": "raw", "encoding": "parquet"},
            headers=bearer(trainer),
        )
        assert {"judgment_id", "revision"} <= set(pq.read_table(io.BytesIO(raw.content)).column_names)

    async def test_item_granularity_ids(self, client, session) -> None:
        project, rater, trainer = await _setup(session, n=1)
        (made,) = await _judge(client, project, rater, 1)
        consumer = Consumer("trl", granularity="item")
        await consumer.pull(client, project, trainer)
        await _revise(client, rater, made, choice=made["candidates"][1])
        response = await consumer.pull(client, project, trainer)
        (row,) = [orjson.loads(x) for x in response.content.splitlines()]
        assert (row["item_id"], row["aggregate_revision"], row["deleted"]) == (made["item_id"], 2, False)
        texts = await _texts(session)
        assert row["chosen"] == texts[uuid.UUID(made["candidates"][1])]
        await _revise(client, rater, made, tie=True)  # the item's only vote is now a tie: no pair
        response = await consumer.pull(client, project, trainer)
        assert [orjson.loads(x) for x in response.content.splitlines()] == [
            {"item_id": made["item_id"], "aggregate_revision": 3, "deleted": True}
        ]
        assert consumer.rows() == {}


class TestRevisionsHeader:
    async def test_a_pull_without_ids_says_how_many_judgments_were_revised(self, client, session) -> None:
        project, rater, trainer = await _setup(session, n=3)
        made = await _judge(client, project, rater, 3)
        url = f"/api/v1/projects/{project.id}/export"
        first = await client.get(url, params={"format": "trl"}, headers=bearer(trainer))
        assert first.headers["Assay-Revisions"] == "0"
        await _revise(client, rater, made[0], choice=made[0]["candidates"][1])
        await _revise(client, rater, made[2], tie=True)
        after = {"format": "trl", "after": first.headers["Assay-Next-Cursor"]}
        second = await client.get(url, params=after, headers=bearer(trainer))
        assert second.headers["Assay-Revisions"] == "2"
        assert "judgment_id" not in orjson.loads(second.content.splitlines()[0])
        items = await client.get(url, params={"format": "trl", "granularity": "item"}, headers=bearer(trainer))
        assert items.headers["Assay-Revisions"] == "2"
        raw = await client.get(url, params={"format": "raw"}, headers=bearer(trainer))
        assert sorted(orjson.loads(x)["revision"] for x in raw.content.splitlines()) == [1, 2, 2]
