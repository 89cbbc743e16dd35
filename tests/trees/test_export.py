"""Task trees in exports: subtask answers in `raw`, and `format=tree` (one row per completed parent,
subtasks nested) with the cursor and manifest every format has; pair formats leave answers out."""

import hashlib
import io
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq

from server.models import Role, Scope
from server.projects import service as projects
from tests.factories import bearer, create_token, create_user
from tests.trees.conftest import Setup, answer, lease, tree_record


async def export(client: httpx.AsyncClient, s: Setup, token: str, **params: Any) -> httpx.Response:
    return await client.get(f"/api/v1/projects/{s.project.id}/export", params=params, headers=bearer(token))


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines()]


async def judge_tree(client: httpx.AsyncClient, s: Setup) -> None:
    """The rater answers every subtask, then the parent (which opens last)."""
    while (a := await lease(client, s)) is not None:
        body = (
            {"answer": {"check": "no", "rating": 4, "answer": "Autumn"}[a["item"]["kind"]]}
            if a["item"]["kind"] != "comparison"
            else {"choice": a["item"]["candidates"][0]["id"]}
        )
        response = await answer(client, s.tokens[0], a, rationale="why", **body)
        assert response.status_code == 201, response.text


async def trainer_token(session, s: Setup) -> str:  # type: ignore[no-untyped-def]
    trainer = await create_user(session, role=Role.trainer)
    await projects.add_member(session, s.project, trainer.id, actor=s.admin)
    await session.commit()
    return await create_token(session, trainer, Scope.export_read)


async def test_tree_rows_cursor_and_manifest(client, make_setup, session) -> None:
    s: Setup = await make_setup([tree_record("t1"), tree_record("t2")], n_raters=1)
    token = await trainer_token(session, s)
    # Nothing complete yet: no row.
    assert lines(await export(client, s, token, format="tree")) == []
    await judge_tree(client, s)
    first = await export(client, s, token, format="tree")
    rows = lines(first)
    assert [r["external_id"] for r in rows] == ["t1", "t2"]
    row = rows[0]
    assert set(row) >= {"item_id", "external_id", "prompt", "candidates", "judgments", "subtasks"}
    assert len(row["judgments"]) == 1
    assert row["judgments"][0]["rater"].startswith("r_")
    assert [t["external_id"] for t in row["subtasks"]] == ["t1/0", "t1/1", "t1/2"]
    check, nested_parent, rating = row["subtasks"]
    assert (check["kind"], check["question"], check["span"]) == ("check", "Is the flood season right in A?", [4, 26])
    assert [a["answer"] for a in check["answers"]] == ["no"]
    assert check["aggregate"] == {"answer": "no", "agreement": 1.0, "answers": 1}
    assert check["candidate_id"] in {c["id"] for c in row["candidates"]}
    assert [t["external_id"] for t in nested_parent["subtasks"]] == ["t1/1/0"]
    assert nested_parent["subtasks"][0]["answers"][0]["answer"] == "Autumn"
    assert rating["aggregate"]["answer"] == 4
    assert rating["scale"] == [1.0, 5.0]
    # The cursor: nothing new, nothing delivered; the manifest cites the body.
    cursor = first.headers["Assay-Next-Cursor"]
    assert lines(await export(client, s, token, format="tree", after=cursor)) == []
    manifest = (await client.get(f"/api/v1/exports/{first.headers['Assay-Export-Id']}", headers=bearer(token))).json()
    assert (manifest["format"], manifest["rows"]) == ("tree", 2)
    assert manifest["sha256"] == hashlib.sha256(first.content).hexdigest()


async def test_raw_carries_answers_and_pair_formats_leave_them_out(client, make_setup, session) -> None:
    s: Setup = await make_setup([tree_record()], n_raters=1)
    token = await trainer_token(session, s)
    await judge_tree(client, s)
    raw = lines(await export(client, s, token, format="raw"))
    by_id = {r["external_id"]: r for r in raw}
    assert set(by_id) == {"t1", "t1/0", "t1/1", "t1/1/0", "t1/2"}
    assert (by_id["t1/0"]["kind"], by_id["t1/0"]["answer"]) == ("check", "no")
    assert by_id["t1/0"]["question"] == "Is the flood season right in A?"
    assert by_id["t1/0"]["parent_id"] == by_id["t1"]["item_id"]
    assert by_id["t1/2"]["answer"] == 4
    assert (by_id["t1"]["kind"], by_id["t1"]["answer"]) == ("comparison", None)
    # Pair formats hold preferences: the parent's pair only.
    assert len(lines(await export(client, s, token, format="trl"))) == 1
    assert len(lines(await export(client, s, token, format="trl", granularity="item"))) == 1
    assert len(lines(await export(client, s, token, format="raw", granularity="item"))) == 1
    parquet = await export(client, s, token, format="raw", encoding="parquet")
    assert parquet.status_code == 200, parquet.text
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 5
    assert sorted(v for v in table.column("answer").to_pylist() if v) == ['"Autumn"', '"no"', '"no"', "4"]


async def test_refusals(client, make_setup, session) -> None:
    s: Setup = await make_setup([tree_record()], n_raters=1)
    token = await trainer_token(session, s)
    response = await export(client, s, token, format="tree", encoding="parquet")
    assert response.status_code == 422
    assert response.json()["detail"] == "format=tree nests each item's subtasks in its row; use encoding=jsonl."
    response = await export(client, s, token, format="tree", granularity="item")
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "format=tree has one row per completed item with its subtasks, judgments and answers: "
        "drop granularity, aggregation and gold."
    )
