import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from server.items import search
from server.models import Role, Scope
from tests.factories import (
    bearer,
    create_project,
    create_token,
    create_user,
    import_items,
    native_items,
    next_item,
)


async def rate_all(client: httpx.AsyncClient, project, token: str, *, pick: int = 0, **extra: Any) -> int:
    done = 0
    while (response := await next_item(client, project, token)).status_code == 200:
        a = response.json()
        body = {"choice": a["item"]["candidates"][pick]["id"], **extra}
        assert (
            await client.post(f"/api/v1/assignments/{a['id']}/judgment", json=body, headers=bearer(token))
        ).status_code == 201
        done += 1
    return done


async def pull(
    client: httpx.AsyncClient, project, token: str, fmt: str, after: str | None = None
) -> tuple[list[dict], str]:
    params = {"format": fmt} | ({"after": after} if after else {})
    response = await client.get(f"/api/v1/projects/{project.id}/export", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    return rows, response.headers["Assay-Next-Cursor"]


class TestExport:
    async def setup(self, session: AsyncSession, n: int = 3, **settings: Any):  # type: ignore[no-untyped-def]
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(rater, trainer), **settings)
        if n:
            await import_items(session, project, admin, native_items(n))
        return (
            project,
            await create_token(session, rater),
            await create_token(session, trainer, Scope.export_read),
        )

    async def test_trl_rows_have_prompt_chosen_rejected(self, client, session) -> None:
        project, rater, trainer = await self.setup(session)
        await rate_all(client, project, rater)
        rows, _ = await pull(client, project, trainer, "trl")
        assert len(rows) == 3
        assert set(rows[0]) == {"prompt", "chosen", "rejected"}
        assert rows[0]["prompt"].startswith("Question number")
        assert rows[0]["chosen"] != rows[0]["rejected"]

    async def test_raw_rows_carry_every_field_with_pseudonymous_rater(self, client, session) -> None:
        project, rater, trainer = await self.setup(session, n=1, rationale="optional", scale="4-point")
        await rate_all(client, project, rater, strength=2, rationale="clearer", active_ms=1500)
        rows, _ = await pull(client, project, trainer, "raw")
        row = rows[0]
        assert row["rater"].startswith("r_")
        assert "@" not in row["rater"]
        assert (row["strength"], row["rationale"], row["active_ms"], row["surplus"]) == (
            2,
            "clearer",
            1500,
            False,
        )
        assert len(row["shown_order"]) == 2
        assert row["choice"] in row["shown_order"]

    async def test_cursor_returns_only_new_rows(self, client, session) -> None:
        project, rater, trainer = await self.setup(session, n=4)
        first = await next_item(client, project, rater)
        a = first.json()
        await client.post(
            f"/api/v1/assignments/{a['id']}/judgment",
            json={"choice": a["item"]["candidates"][0]["id"]},
            headers=bearer(rater),
        )
        rows, cursor = await pull(client, project, trainer, "raw")
        assert len(rows) == 1
        empty, same = await pull(client, project, trainer, "raw", cursor)
        assert empty == []
        await rate_all(client, project, rater)
        rest, _ = await pull(client, project, trainer, "raw", same)
        assert len(rest) == 3
        assert {r["judgment_id"] for r in rest}.isdisjoint({rows[0]["judgment_id"]})

    async def test_rows_of_open_transaction_wait_for_the_next_pull(self, client, session, engine) -> None:
        """A judgment committed after a later one is never skipped by the cursor."""
        project, rater, trainer = await self.setup(session, n=2)
        a = (await next_item(client, project, rater)).json()
        # Hold a transaction open that started (took its xid) before the export runs.
        async with engine.connect() as blocker:
            await blocker.begin()
            await blocker.exec_driver_sql("SELECT pg_current_xact_id()")
            await client.post(
                f"/api/v1/assignments/{a['id']}/judgment",
                json={"choice": a["item"]["candidates"][0]["id"]},
                headers=bearer(rater),
            )
            response = await client.get(
                f"/api/v1/projects/{project.id}/export", params={"format": "raw"}, headers=bearer(trainer)
            )
            assert response.content == b""  # the judgment's xid is above the open transaction's: it waits
            assert response.headers["Assay-Held-Back"] == "1"  # and the trainer is told one row waits
            cursor = response.headers["Assay-Next-Cursor"]
            await blocker.rollback()
        response = await client.get(
            f"/api/v1/projects/{project.id}/export", params={"format": "raw", "after": cursor}, headers=bearer(trainer)
        )
        assert len(response.content.splitlines()) == 1
        assert response.headers["Assay-Held-Back"] == "0"

    async def test_the_search_indexer_does_not_hold_rows_back(self, client, session, engine) -> None:
        """The word index is written after an import, in transactions no export needs to wait for."""
        project, rater, trainer = await self.setup(session, n=1)
        async with engine.connect() as indexer:
            await indexer.begin()
            await indexer.execute(search._AS_INDEXER)  # as search.fill starts each transaction
            await indexer.exec_driver_sql("SELECT pg_current_xact_id()")
            await rate_all(client, project, rater)
            response = await client.get(
                f"/api/v1/projects/{project.id}/export", params={"format": "raw"}, headers=bearer(trainer)
            )
            assert len(response.content.splitlines()) == 1
            assert response.headers["Assay-Held-Back"] == "0"
            await indexer.rollback()

    async def test_an_open_transaction_in_another_database_does_not_hold_rows_back(
        self, client, session, database_url
    ) -> None:
        """Transaction ids are cluster-wide; only this database's transactions can delay a row."""
        project, rater, trainer = await self.setup(session, n=1)
        other = (
            make_url(database_url)
            .set(drivername="postgresql+asyncpg", database="postgres")
            .render_as_string(hide_password=False)
        )
        elsewhere = create_async_engine(other, poolclass=NullPool)
        try:
            async with elsewhere.connect() as blocker:
                await blocker.begin()
                await blocker.exec_driver_sql("SELECT pg_current_xact_id()")  # holds a cluster-wide xid
                await rate_all(client, project, rater)
                response = await client.get(
                    f"/api/v1/projects/{project.id}/export", params={"format": "raw"}, headers=bearer(trainer)
                )
                assert len(response.content.splitlines()) == 1
                assert response.headers["Assay-Held-Back"] == "0"
                await blocker.rollback()
        finally:
            await elsewhere.dispose()

    async def test_bad_cursor_refused(self, client, session) -> None:
        project, _, trainer = await self.setup(session)
        response = await client.get(
            f"/api/v1/projects/{project.id}/export", params={"after": "garbage!"}, headers=bearer(trainer)
        )
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "after is not a cursor from this server; pass the Assay-Next-Cursor value of your last export."
        )

    async def test_ties_have_no_trl_row(self, client, session) -> None:
        project, rater, trainer = await self.setup(session, n=1, allow_tie=True)
        a = (await next_item(client, project, rater)).json()
        await client.post(f"/api/v1/assignments/{a['id']}/judgment", json={"tie": True}, headers=bearer(rater))
        assert (await pull(client, project, trainer, "trl"))[0] == []
        assert len((await pull(client, project, trainer, "raw"))[0]) == 1

    async def test_concurrent_judgments_are_each_exported_once(self, client, session) -> None:
        project, _rater_token, trainer = await self.setup(session, n=0)
        admin = await create_user(session, role=Role.admin)
        raters = [await create_user(session) for _ in range(8)]
        from server.projects import service as projects

        for r in raters:
            await projects.add_member(session, project, r.id, actor=admin)
        await session.commit()
        await import_items(session, project, admin, native_items(40))
        tokens = [await create_token(session, r) for r in raters]
        seen: list[str] = []
        cursor = None
        workers = asyncio.gather(*(rate_all(client, project, t) for t in tokens))
        while not workers.done():
            rows, cursor = await pull(client, project, trainer, "raw", cursor)
            seen += [r["judgment_id"] for r in rows]
            await asyncio.sleep(0.01)
        total = sum(await workers)
        rows, cursor = await pull(client, project, trainer, "raw", cursor)
        seen += [r["judgment_id"] for r in rows]
        assert total == 40
        assert len(seen) == len(set(seen)) == 40


async def export_response(client: httpx.AsyncClient, project, token: str, **params: Any) -> httpx.Response:
    return await client.get(f"/api/v1/projects/{project.id}/export", params=params, headers=bearer(token))


class TestExportOptions:
    async def team(self, session: AsyncSession, n: int, **settings: Any):  # type: ignore[no-untyped-def]
        """A project with `n` items, two raters and a trainer."""
        admin = await create_user(session, role=Role.admin)
        raters = [await create_user(session), await create_user(session)]
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(*raters, trainer), **settings)
        batch = await import_items(session, project, admin, native_items(n))
        tokens = [await create_token(session, r) for r in raters]
        return project, batch, tokens, await create_token(session, trainer, Scope.export_read), admin

    async def test_item_granularity_waits_for_completion_and_delivers_once(self, client, session) -> None:
        project, _, (first, second), trainer, _ = await self.team(session, n=2, overlap=2)
        await rate_all(client, project, first, pick=0)
        response = await export_response(client, project, trainer, granularity="item", format="raw")
        assert response.content == b""  # one judgment of two: nothing is final yet
        cursor = response.headers["Assay-Next-Cursor"]
        await rate_all(client, project, second, pick=0)
        response = await export_response(client, project, trainer, granularity="item", format="raw", after=cursor)
        items = [orjson.loads(line) for line in response.content.splitlines()]
        assert len(items) == 2
        assert {i["judgments"] for i in items} == {2}
        again = await export_response(
            client, project, trainer, granularity="item", format="raw", after=response.headers["Assay-Next-Cursor"]
        )
        assert again.content == b""

    async def test_item_trl_rows_follow_the_majority_and_min_agreement(self, client, session) -> None:
        project, _, (first, second), trainer, _ = await self.team(session, n=1, overlap=2)
        a = (await next_item(client, project, first)).json()
        b = (await next_item(client, project, second)).json()
        ids = [c["id"] for c in a["item"]["candidates"]]
        for token, assignment in ((first, a), (second, b)):
            body = {"choice": ids[0]}
            response = await client.post(
                f"/api/v1/assignments/{assignment['id']}/judgment", json=body, headers=bearer(token)
            )
            assert response.status_code == 201
        response = await export_response(client, project, trainer, granularity="item", min_agreement=1)
        (row,) = [orjson.loads(line) for line in response.content.splitlines()]
        chosen = next(c for c in a["item"]["candidates"] if c["id"] == ids[0])
        assert row["chosen"] == chosen["text"]

    async def test_split_vote_yields_no_item_trl_row(self, client, session) -> None:
        project, _, (first, second), trainer, _ = await self.team(session, n=1, overlap=2)
        a = (await next_item(client, project, first)).json()
        b = (await next_item(client, project, second)).json()
        ids = [c["id"] for c in a["item"]["candidates"]]
        for token, assignment, pick in ((first, a, ids[0]), (second, b, ids[1])):
            await client.post(
                f"/api/v1/assignments/{assignment['id']}/judgment", json={"choice": pick}, headers=bearer(token)
            )
        assert (await export_response(client, project, trainer, granularity="item")).content == b""
        raw = await export_response(client, project, trainer, granularity="item", format="raw")
        (item,) = [orjson.loads(line) for line in raw.content.splitlines()]
        assert [(p["votes_for"], p["votes_against"], p["majority"]) for p in item["pairs"]] == [(1, 1, False)]

    async def test_completed_only_gives_judgments_once_their_item_completes(self, client, session) -> None:
        project, _, (first, second), trainer, _ = await self.team(session, n=3, overlap=2)
        await rate_all(client, project, first)
        response = await export_response(client, project, trainer, completed="true", format="raw")
        assert response.content == b""
        await rate_all(client, project, second)
        response = await export_response(
            client, project, trainer, completed="true", format="raw", after=response.headers["Assay-Next-Cursor"]
        )
        assert len(response.content.splitlines()) == 6

    async def test_margin_from_strength_in_every_row(self, client, session) -> None:
        project, _, (first, _second), trainer, _ = await self.team(session, n=2, scale="8-point")
        await rate_all(client, project, first, strength=3)
        response = await export_response(client, project, trainer, margin="true")
        rows = [orjson.loads(line) for line in response.content.splitlines()]
        assert [r["margin"] for r in rows] == [2.0, 2.0]

    async def test_refusals(self, client, session) -> None:
        project, _, _, trainer, _ = await self.team(session, n=1, name="Binary one")
        cases = [
            (
                {"margin": "true"},
                "margin comes from the raters' strength, and project 'Binary one' uses the binary scale "
                "(no strength); drop margin=true.",
            ),
            ({"margin": "true", "format": "hh"}, "margin is a column of the trl format; format=hh has no margin."),
            (
                {"min_agreement": "0.8"},
                "min_agreement filters the raters' aggregate of an item: add granularity=item or drop min_agreement.",
            ),
            (
                {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
                "since must be earlier than until.",
            ),
        ]
        for params, message in cases:
            response = await export_response(client, project, trainer, **params)
            assert response.status_code == 422, params
            assert response.json()["detail"] == message

    async def test_cursor_of_other_filters_refused(self, client, session) -> None:
        project, _, _, trainer, _ = await self.team(session, n=1)
        cursor = (await export_response(client, project, trainer)).headers["Assay-Next-Cursor"]
        response = await export_response(client, project, trainer, granularity="item", after=cursor)
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "This cursor belongs to an export with other filters (granularity, batch_id, completed, since, until, "
            "min_agreement, aggregation, raters, gold, judges): repeat that export's filters, or start again "
            "without after."
        )
        # The shape (format, encoding) may change between pulls: the rows chosen are the same.
        assert (await export_response(client, project, trainer, format="hh", after=cursor)).status_code == 200

    async def test_batch_and_time_filters(self, client, session) -> None:
        project, first_batch, (rater, _), trainer, admin = await self.team(session, n=2)
        await import_items(session, project, admin, native_items(3, prefix="second"))
        assert await rate_all(client, project, rater) == 5
        response = await export_response(client, project, trainer, batch_id=str(first_batch), format="raw")
        assert {orjson.loads(line)["batch_id"] for line in response.content.splitlines()} == {str(first_batch)}
        assert len(response.content.splitlines()) == 2
        future = await export_response(client, project, trainer, since="2999-01-01T00:00:00Z")
        assert future.content == b""
        past = await export_response(client, project, trainer, until="2999-01-01T00:00:00Z", format="raw")
        assert len(past.content.splitlines()) == 5

    async def test_manifest_cites_the_body(self, client, session) -> None:
        project, _, (rater, _), trainer, _ = await self.team(session, n=3)
        await rate_all(client, project, rater)
        first = await export_response(client, project, trainer, format="hh")
        second = await export_response(client, project, trainer, after=first.headers["Assay-Next-Cursor"])
        manifest = (
            await client.get(f"/api/v1/exports/{first.headers['Assay-Export-Id']}", headers=bearer(trainer))
        ).json()
        assert manifest["status"] == "complete"
        assert manifest["rows"] == 3
        assert manifest["bytes"] == len(first.content)
        assert manifest["sha256"] == hashlib.sha256(first.content).hexdigest()
        assert (manifest["format"], manifest["encoding"], manifest["format_version"]) == ("hh", "jsonl", 1)
        assert manifest["after"] is None
        assert manifest["next_cursor"] == first.headers["Assay-Next-Cursor"]
        follow = (
            await client.get(f"/api/v1/exports/{second.headers['Assay-Export-Id']}", headers=bearer(trainer))
        ).json()
        assert (follow["after"], follow["rows"]) == (first.headers["Assay-Next-Cursor"], 0)
        listed = (await client.get(f"/api/v1/projects/{project.id}/exports", headers=bearer(trainer))).json()
        assert [m["id"] for m in listed] == [follow["id"], manifest["id"]]

    async def test_manifest_of_an_unshared_project_is_404(self, client, session) -> None:
        project, _, _, trainer, _ = await self.team(session, n=1)
        export_id = (await export_response(client, project, trainer)).headers["Assay-Export-Id"]
        outsider = await create_user(session, role=Role.trainer)
        token = await create_token(session, outsider, Scope.export_read)
        response = await client.get(f"/api/v1/exports/{export_id}", headers=bearer(token))
        assert response.status_code == 404
        assert response.json()["detail"] == f"No export {export_id} is visible to you."

    async def test_gzip_when_accepted(self, client, session) -> None:
        project, _, (rater, _), trainer, _ = await self.team(session, n=3)
        await rate_all(client, project, rater)
        headers = bearer(trainer) | {"Accept-Encoding": "gzip"}
        response = await client.get(f"/api/v1/projects/{project.id}/export", headers=headers)
        assert response.headers["Content-Encoding"] == "gzip"
        assert len(response.content.splitlines()) == 3  # httpx decompressed it
        manifest = (
            await client.get(f"/api/v1/exports/{response.headers['Assay-Export-Id']}", headers=bearer(trainer))
        ).json()
        assert manifest["sha256"] == hashlib.sha256(response.content).hexdigest()  # of the uncompressed body

    async def test_parquet_by_query_or_accept_header(self, client, session) -> None:
        project, _, (rater, _), trainer, _ = await self.team(session, n=3)
        await rate_all(client, project, rater)
        by_query = await export_response(client, project, trainer, encoding="parquet")
        headers = bearer(trainer) | {"Accept": "application/vnd.apache.parquet"}
        by_accept = await client.get(f"/api/v1/projects/{project.id}/export", headers=headers)
        for response in (by_query, by_accept):
            assert response.headers["Content-Type"] == "application/vnd.apache.parquet"
            table = pq.read_table(io.BytesIO(response.content))
            assert table.column_names == ["prompt", "chosen", "rejected"]
            assert table.num_rows == 3

    async def test_empty_parquet_export_is_a_valid_file(self, client, session) -> None:
        project, _, _, trainer, _ = await self.team(session, n=1)
        response = await export_response(client, project, trainer, encoding="parquet", format="raw")
        table = pq.read_table(io.BytesIO(response.content))
        assert table.num_rows == 0
        assert "judgment_id" in table.column_names

    async def test_concurrent_items_complete_and_are_each_delivered_once(self, client, session) -> None:
        admin = await create_user(session, role=Role.admin)
        raters = [await create_user(session) for _ in range(6)]
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(*raters, trainer), overlap=2)
        await import_items(session, project, admin, native_items(30))
        tokens = [await create_token(session, r) for r in raters]
        trainer_token = await create_token(session, trainer, Scope.export_read)
        seen: list[str] = []
        cursor: str | None = None

        async def drain() -> None:
            nonlocal cursor
            params = {"granularity": "item", "format": "raw"} | ({"after": cursor} if cursor else {})
            response = await export_response(client, project, trainer_token, **params)
            seen.extend(orjson.loads(line)["item_id"] for line in response.content.splitlines())
            cursor = response.headers["Assay-Next-Cursor"]

        workers = asyncio.gather(*(rate_all(client, project, t) for t in tokens))
        while not workers.done():
            await drain()
            await asyncio.sleep(0.01)
        assert sum(await workers) == 60
        await drain()
        assert len(seen) == len(set(seen)) == 30


async def test_the_manifest_is_complete_before_the_client_sees_the_end_of_the_body() -> None:
    """A trainer that checks the manifest right after its download finds it complete (found by
    `make bench`: the export phase read the manifest while the server was still finishing it)."""
    from server.exports.limits import ExportResponse

    events: list[str] = []

    class Job:
        done = False

        async def finish(self, *, aborted_reason: str | None) -> None:
            if "finished" not in events:
                events.append("finished" if aborted_reason is None else f"aborted: {aborted_reason}")

    job = Job()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"row": 1}\n'
        job.done = True

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never goes away
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            events.append("last byte" if not message.get("more_body", False) else "body")

    content = body()
    response = ExportResponse(
        job, content, generators=[content], send_timeout=5, media_type="application/jsonl", headers={}
    )
    await response({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send)
    assert events == ["body", "finished", "last byte"]
