import asyncio
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

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
