"""Cursors are signed and bound to the database, the project and the row filters; exports are
bounded per principal; a download that does not send its last byte is recorded as aborted."""

import asyncio
import base64
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.config import settings
from server.errors import TooManyRequests
from server.exports import cursors, service
from server.exports.identity import SETTLE_GAP, set_offset, settle, stamp_function
from server.models import Role, Scope
from tests.exports.test_api import rate_all
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items
from tests.labeling.race import Holder, blocked_by, until


async def team(session: AsyncSession, n: int = 3, projects: int = 1):  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    trainer = await create_user(session, role=Role.trainer)
    made = []
    for p in range(projects):
        project = await create_project(session, admin, members=(rater, trainer), name=f"Project {p}")
        await import_items(session, project, admin, native_items(n))
        made.append(project)
    return made, admin, await create_token(session, rater), await create_token(session, trainer, Scope.export_read)


async def pull(client: httpx.AsyncClient, project, token: str, **params: Any) -> httpx.Response:  # type: ignore[no-untyped-def]
    params = {"format": "raw"} | params
    return await client.get(f"/api/v1/projects/{project.id}/export", params=params, headers=bearer(token))


def refusal(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    detail: str = response.json()["detail"]
    return detail


def _raw(cursor: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


class TestSignedCursors:
    async def test_a_cursor_is_compact_and_url_safe(self, client, session) -> None:
        [project], _, _, trainer = await team(session)
        cursor = (await pull(client, project, trainer)).headers["Assay-Next-Cursor"]
        assert len(cursor) == 47
        assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    async def test_an_altered_cursor_is_refused(self, client, session) -> None:
        [project], _, rater, trainer = await team(session)
        await rate_all(client, project, rater)
        cursor = (await pull(client, project, trainer)).headers["Assay-Next-Cursor"]
        raw = _raw(cursor)
        raw[8] ^= 0x40  # the watermark, moved back to replay or forward to skip rows
        assert refusal(await pull(client, project, trainer, after=_text(raw)), 422) == cursors.TAMPERED
        assert refusal(await pull(client, project, trainer, after=cursor[:-2]), 422) == cursors.NOT_A_CURSOR

    async def test_another_projects_cursor_is_refused(self, client, session) -> None:
        [first, second], _, rater, trainer = await team(session, projects=2)
        await rate_all(client, first, rater)
        await rate_all(client, second, rater)
        cursor = (await pull(client, first, trainer)).headers["Assay-Next-Cursor"]
        assert refusal(await pull(client, second, trainer, after=cursor), 409) == cursors.OTHER_PROJECT

    async def test_another_databases_cursor_is_refused(self, client, session, engine: AsyncEngine) -> None:
        [project], _, rater, trainer = await team(session)
        await rate_all(client, project, rater)
        async with engine.begin() as connection:
            ours = await connection.scalar(text("SELECT database_id FROM assay_meta"))
            await connection.execute(text("UPDATE assay_meta SET database_id = :id"), {"id": uuid.uuid4()})
        try:
            theirs = (await pull(client, project, trainer)).headers["Assay-Next-Cursor"]
        finally:
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE assay_meta SET database_id = :id"), {"id": ours})
        assert refusal(await pull(client, project, trainer, after=theirs), 409) == cursors.OTHER_DATABASE

    async def test_a_cursor_ahead_of_the_database_is_refused(self, client, session) -> None:
        [project], _, _, trainer = await team(session)
        database = await service.database_id(session)
        ahead = cursors.encode_cursor(
            1 << 60, selection=service.ExportRequest().selection_key(), project_id=project.id, database_id=database
        )  # what a server whose database was replaced by an older copy handed out
        assert refusal(await pull(client, project, trainer, after=ahead), 409) == cursors.AHEAD

    async def test_a_recorded_unsigned_cursor_is_accepted_once_and_others_refused(self, client, session) -> None:
        [project], _, rater, trainer = await team(session, n=4)
        await rate_all(client, project, rater)
        first = await pull(client, project, trainer)
        manifest = (
            await client.get(f"/api/v1/exports/{first.headers['Assay-Export-Id']}", headers=bearer(trainer))
        ).json()
        key = service.ExportRequest().selection_key()
        xid = await session.scalar(text("SELECT cursor_to FROM exports WHERE id = :id"), {"id": manifest["id"]})
        legacy = _text(f"j2:{xid}:{key}".encode())  # as issued before cursors were signed
        after = await pull(client, project, trainer, after=legacy)
        assert (after.status_code, after.content) == (200, b"")
        unrecorded = _text(f"j2:{xid - 1}:{key}".encode())
        assert refusal(await pull(client, project, trainer, after=unrecorded), 409) == cursors.UNRECORDED_LEGACY
        other_filters = _text(f"j2:{xid}:000000000000".encode())
        assert refusal(await pull(client, project, trainer, after=other_filters), 422) == cursors.OTHER_FILTERS


class TestSettle:
    async def test_stamps_restored_from_an_older_cluster_push_new_stamps_after_them(
        self, client, session, engine: AsyncEngine
    ) -> None:
        [project], _, rater, trainer = await team(session, n=4)
        await rate_all(client, project, rater)
        assert await settle(engine) is None  # the counter is ahead of every stamp: nothing to do
        # What a restore into a young cluster looks like: stored stamps far above the counter.
        async with engine.begin() as connection:
            counter = await connection.scalar(text("SELECT (pg_current_xact_id()::text)::bigint"))
            restored = counter + 10**9
            await connection.execute(text("UPDATE judgments SET xid = :x"), {"x": restored})
            await connection.execute(
                text("UPDATE items SET aggregate_xid = :x WHERE aggregate_xid IS NOT NULL"), {"x": restored}
            )
        try:
            offset = await settle(engine)
            assert offset is not None
            assert offset > 10**9 + SETTLE_GAP - 1000
            full = await pull(client, project, trainer)
            assert (len(full.content.splitlines()), full.headers["Assay-Held-Back"]) == (4, "0")
            stamp = await session.scalar(text("SELECT assay_xid()"))
            assert stamp >= restored + SETTLE_GAP
            assert await settle(engine) is None  # settled once: a second start changes nothing
        finally:
            async with engine.begin() as connection:
                await set_offset(connection, 0)

    async def test_two_processes_starting_together_settle_once(self, client, session, engine: AsyncEngine) -> None:
        """The second settle waits for the first's assay_meta lock (holding nothing), then finds nothing to do."""
        [project], _, rater, _ = await team(session, n=2)
        await rate_all(client, project, rater)
        async with engine.begin() as connection:
            counter = await connection.scalar(text("SELECT (pg_current_xact_id()::text)::bigint"))
            await connection.execute(text("UPDATE judgments SET xid = :x"), {"x": counter + 10**9})
        first = Holder(engine)
        try:
            # A settle in progress: the row locked and the offset raised, not committed yet.
            await first.hold("SELECT 1 FROM assay_meta FOR UPDATE")
            await first.hold("UPDATE assay_meta SET xid_offset = :o", o=10**9 + SETTLE_GAP)
            await first.hold(stamp_function(10**9 + SETTLE_GAP))
            second = asyncio.create_task(settle(engine))
            await until(lambda: _blocks(first, engine), what="the second settle to wait")
            assert not second.done()
            await first.release(commit=True)
            assert await second is None
            assert await session.scalar(text("SELECT xid_offset FROM assay_meta")) == 10**9 + SETTLE_GAP
        finally:
            await first.release()
            async with engine.begin() as connection:
                await set_offset(connection, 0)


async def _blocks(holder: Holder, engine: AsyncEngine) -> bool:
    return await blocked_by(engine, await holder.pid())


class TestBounds:
    async def test_a_principal_streams_at_most_its_share_of_exports(self, session, engine: AsyncEngine) -> None:
        [project], admin, _, _ = await team(session)
        open_ = [
            await service.open_export(
                engine,
                engine,
                project=project,
                requester=admin,
                principal="token:a",
                after=None,
                request=service.ExportRequest(),
            )
            for _ in range(settings.exports_per_principal)
        ]
        try:
            with pytest.raises(TooManyRequests) as refused:
                await service.open_export(
                    engine,
                    engine,
                    project=project,
                    requester=admin,
                    principal="token:a",
                    after=None,
                    request=service.ExportRequest(),
                )
            assert refused.value.message == (
                "You are already downloading 2 exports at once (ASSAY_EXPORTS_PER_PRINCIPAL); let one finish, "
                "then retry."
            )
            assert refused.value.headers == {"Retry-After": "10"}
            other = await service.open_export(
                engine,
                engine,
                project=project,
                requester=admin,
                principal="token:b",
                after=None,
                request=service.ExportRequest(),
            )
            await other.finish(aborted_reason="disconnected")
            await open_.pop().finish(aborted_reason="disconnected")
            # One finished: its slot is free again.
            again = await service.open_export(
                engine,
                engine,
                project=project,
                requester=admin,
                principal="token:a",
                after=None,
                request=service.ExportRequest(),
            )
            open_.append(again)
        finally:
            for job in open_:
                await job.finish(aborted_reason="disconnected")


async def _call(app, path: str, token: str, *, stall: bool) -> list[dict]:  # type: ignore[no-untyped-def]
    """Run one export request through the ASGI app with a client that stops reading after the
    first body chunk: it then either hangs up (stall=False) or never reads again (stall=True)."""
    sent: list[dict] = []
    got_body = asyncio.Event()

    async def receive() -> dict:
        if not sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        await got_body.wait()
        if stall:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            got_body.set()
            await asyncio.Event().wait()  # the client reads nothing more

    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    sent.append({"type": "started"})
    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    return sent


class TestAborted:
    @pytest.mark.parametrize(("stall", "reason"), [(False, "disconnected"), (True, "send_timeout")])
    async def test_a_download_cut_off_is_recorded_as_aborted(
        self, app, client, session, monkeypatch, stall: bool, reason: str
    ) -> None:
        monkeypatch.setattr(settings, "export_send_timeout_seconds", 0.5)
        [project], _, rater, trainer = await team(session, n=3)
        await rate_all(client, project, rater)
        await _call(app, f"/api/v1/projects/{project.id}/export?format=raw", trainer, stall=stall)
        status = (await session.execute(text("SELECT status, aborted_reason, rows FROM exports"))).one()
        assert tuple(status) == ("aborted", reason, 3)
        listed = (await client.get(f"/api/v1/projects/{project.id}/exports", headers=bearer(trainer))).json()
        assert (listed[0]["status"], listed[0]["aborted_reason"]) == ("aborted", reason)

    async def test_a_download_read_to_the_end_is_complete(self, client, session) -> None:
        [project], _, rater, trainer = await team(session, n=3)
        await rate_all(client, project, rater)
        response = await pull(client, project, trainer)
        manifest = (
            await client.get(f"/api/v1/exports/{response.headers['Assay-Export-Id']}", headers=bearer(trainer))
        ).json()
        assert (manifest["status"], manifest["aborted_reason"], manifest["rows"]) == ("complete", None, 3)
