"""format=critiques: a row per critique in each judgment, with the cursor, encodings and manifest
every format has."""

import hashlib
import io
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq

from server.models import Role, Scope
from server.projects import service as projects
from tests.critiques.conftest import EMOJI_TEXT, Setup
from tests.factories import bearer, create_token, create_user, next_item


async def export(client: httpx.AsyncClient, s: Setup, token: str, **params: Any) -> httpx.Response:
    response = await client.get(
        f"/api/v1/projects/{s.project.id}/export", params={"format": "critiques", **params}, headers=bearer(token)
    )
    return response


async def judge_one(client: httpx.AsyncClient, s: Setup, *, write: bool = False) -> dict[str, Any]:
    lease = (await next_item(client, s.project, s.tokens[0])).json()
    critique = lease["assistance"]["critiques"][0]
    body: dict[str, Any] = {
        "choice": lease["item"]["candidates"][0]["id"],
        "critique_ratings": [{"critique_id": critique["id"], "verdict": "valid", "helpful": False}],
    }
    if write:
        body["critiques"] = [{"candidate_id": lease["item"]["candidates"][1]["id"], "text": "Mine."}]
    response = await client.post(f"/api/v1/assignments/{lease['id']}/judgment", json=body, headers=bearer(s.tokens[0]))
    assert response.status_code == 201, response.text
    return lease


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in response.content.splitlines()]


async def test_rows_cursor_and_manifest(client, make_setup, session) -> None:
    s = await make_setup(n_items=3, n_raters=1, assistance="always")
    trainer = await create_user(session, role=Role.trainer)
    await projects.add_member(session, s.project, trainer.id, actor=s.admin)
    await session.commit()
    token = await create_token(session, trainer, Scope.export_read)
    lease = await judge_one(client, s)
    first = await export(client, s, token)
    assert first.status_code == 200, first.text
    (row,) = lines(first)
    assert row["kind"] == "rated"
    assert (row["verdict"], row["helpful"]) == ("valid", False)
    assert (row["critique"], row["author"], row["author_kind"]) == (
        "Paris is in France, not Italy.",
        "critic-1",
        "model",
    )
    assert row["span"] == [26, 32]
    assert row["quote"] == EMOJI_TEXT[26:32] == "Italy."
    assert row["response"] == EMOJI_TEXT
    assert row["item_id"] == lease["item"]["id"]
    assert row["rater"].startswith("r_")
    assert row["assistance_shown"] is True
    cursor = first.headers["Assay-Next-Cursor"]
    # The next pull with the cursor: only the new judgment, with the rater's own critique too.
    await judge_one(client, s, write=True)
    second = await export(client, s, token, after=cursor)
    rows = lines(second)
    assert [r["kind"] for r in rows] == ["rated", "written"]
    assert rows[1]["author"] == rows[1]["rater"]
    assert rows[1]["verdict"] is None
    third = await export(client, s, token, after=second.headers["Assay-Next-Cursor"])
    assert third.content == b""
    # The manifest cites the body, as for every format.
    manifest = (await client.get(f"/api/v1/exports/{second.headers['Assay-Export-Id']}", headers=bearer(token))).json()
    assert (manifest["format"], manifest["rows"], manifest["after"]) == ("critiques", 2, cursor)
    assert manifest["sha256"] == hashlib.sha256(second.content).hexdigest()
    # A cursor binds its selection, not the format: a raw pull may follow a critiques one.
    assert (await export(client, s, token, after=cursor, format="raw")).status_code == 200
    # Parquet holds the same rows.
    table = pq.read_table(io.BytesIO((await export(client, s, token, encoding="parquet")).content))
    assert table.num_rows == 3
    assert "quote" in table.column_names


async def test_revision_replaces_the_rows(client, make_setup, session) -> None:
    s = await make_setup(n_items=2, n_raters=1, assistance="always")
    token = await create_token(session, s.admin)
    lease = await judge_one(client, s)
    first = await export(client, s, token, ids="true")
    (row,) = lines(first)
    critique = lease["assistance"]["critiques"][0]["id"]
    judgment = row["judgment_id"]
    revised = await client.patch(
        f"/api/v1/judgments/{judgment}",
        json={
            "choice": lease["item"]["candidates"][0]["id"],
            "critique_ratings": [{"critique_id": critique, "verdict": "invalid"}],
        },
        headers=bearer(s.tokens[0]),
    )
    assert revised.status_code == 200, revised.text
    (again,) = lines(await export(client, s, token, ids="true", after=first.headers["Assay-Next-Cursor"]))
    assert (again["judgment_id"], again["revision"], again["verdict"], again["deleted"]) == (
        judgment,
        2,
        "invalid",
        False,
    )


async def test_refusals(client, make_setup, session) -> None:
    s = await make_setup(n_items=1, n_raters=1)
    token = await create_token(session, s.admin)
    response = await export(client, s, token, granularity="item")
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "format=critiques has a row per critique in each judgment; drop granularity=item "
        "(completed=true keeps to completed items)."
    )
