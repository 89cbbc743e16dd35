"""Slow export downloads never starve raters (a real server process, real sockets).

Trainers' clients that stop reading in the middle of an export used to keep their database
connection for as long as the socket stayed open; 44 of them held the whole pool and a rater's
`next` failed with a 500 after 30 s. Exports now stream on a pool of their own
(ASSAY_EXPORT_POOL_SIZE), one principal streams at most ASSAY_EXPORTS_PER_PRINCIPAL at once, and
a client that accepts nothing for ASSAY_EXPORT_SEND_TIMEOUT_SECONDS is cut off (status aborted).

Here the server gets a main pool of 3 connections, and ten downloads from five trainer tokens
stall; the rater's `next` must still succeed. Nothing here asserts a duration: the timeouts only
bound how long a failing run takes.
"""

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.items import search
from server.models import Role, Scope
from tests.factories import bearer, create_project, create_token, create_user, import_items
from tests.security.server import ServerProcess, start_server

ITEMS = 1100  # more than one fetch of the export's server-side cursor (1,000 rows): the stream pauses mid-way
REPLY = "x" * 4000  # about 10 MB per export, far more than the sockets' buffers hold

PER_PRINCIPAL = (
    "You are already downloading 2 exports at once (ASSAY_EXPORTS_PER_PRINCIPAL); let one finish, then retry."
)
POOL_BUSY = (
    "The server is already sending as many exports as it can at once (4, ASSAY_EXPORT_POOL_SIZE); retry in 10 seconds."
)


@pytest.fixture
def server(database_url: str) -> Iterator[ServerProcess]:
    process = start_server(
        database_url,
        env={
            "ASSAY_DB_POOL_SIZE": "3",
            "ASSAY_DB_MAX_OVERFLOW": "0",
            "ASSAY_EXPORT_POOL_SIZE": "4",
            "ASSAY_EXPORTS_PER_PRINCIPAL": "2",
            "ASSAY_EXPORT_SEND_TIMEOUT_SECONDS": "15",  # longer than opening the ten downloads takes,
        },
    )
    yield process
    process.stop()


@dataclass
class Stalled:
    sock: socket.socket
    status: int | None  # None: no answer within the socket's timeout
    headers: dict[str, str]
    body: bytes  # read only for refusals


def stalled_download(base_url: str, path: str, token: str) -> Stalled:
    """Ask for an export, read the status line and headers, then stop reading (a 429's body is read)."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(512)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        return Stalled(sock, None, {}, b"")
    head, _, rest = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    status = int(lines[0].split()[1])
    if status != 200:
        while len(rest) < int(headers.get("content-length", "0")):
            rest += sock.recv(4096)
    return Stalled(sock, status, headers, rest if status != 200 else b"")


async def _fill(session: AsyncSession, engine: AsyncEngine):  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    trainers = [await create_user(session, role=Role.trainer) for _ in range(5)]
    project = await create_project(session, admin, members=(rater, *trainers))
    records = [
        {"id": f"long-{i}", "prompt": f"Question {i}?", "responses": [{"text": f"{c}{REPLY}"} for c in "ab"]}
        for i in range(ITEMS)
    ]
    await import_items(session, project, admin, records)
    # One judgment per item, written in bulk (the rater loop is not what this test is about); the
    # queue counters are left alone, so the rater still finds open items.
    other = await create_user(session)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                """
                WITH a AS (
                    INSERT INTO assignments (id, project_id, item_id, rater_id, status, shown_order, expires_at,
                                             finished_at)
                    SELECT gen_random_uuid(), i.project_id, i.id, :rater, 'submitted',
                           ARRAY(SELECT c.id FROM candidates c WHERE c.item_id = i.id ORDER BY c.position), now(), now()
                    FROM items i WHERE i.project_id = :project
                    RETURNING id, project_id, item_id, shown_order
                )
                INSERT INTO judgments (id, assignment_id, project_id, item_id, rater_id, choice_id, tie, both_bad,
                                       surplus, assistance_shown)
                SELECT gen_random_uuid(), a.id, a.project_id, a.item_id, :rater, a.shown_order[1], false, false,
                       false, false
                FROM a
                """
            ),
            {"rater": other.id, "project": project.id},
        )
    # The import's search vectors are written by a background task of this process; the downloads
    # below block this process's event loop, so a chunk's transaction left open there would hold the
    # export's watermark back (every row held back, every export empty and quickly done: a CI flake).
    await search.indexing_done()
    tokens = [await create_token(session, t, Scope.export_read) for t in trainers]
    return project, await create_token(session, rater), tokens


async def test_stalled_downloads_leave_raters_working_and_are_aborted(
    server: ServerProcess, session: AsyncSession, engine: AsyncEngine
) -> None:
    project, rater, (a, b, c, d, e) = await _fill(session, engine)
    path = f"/api/v1/projects/{project.id}/export?format=raw"
    downloads: list[Stalled] = []
    try:
        for token in (a, a, a, b, b, c, c, d, d, e):
            downloads.append(stalled_download(server.url, path, token))

        # The rater is served while ten downloads stall.
        try:
            response = httpx.post(
                f"{server.url}/api/v1/projects/{project.id}/assignments/next", headers=bearer(rater), timeout=40
            )
        except httpx.TimeoutException:
            pytest.fail("the rater's next got no answer while export downloads stalled")
        assert response.status_code == 200, response.text

        statuses = [s.status for s in downloads]
        assert [s.headers.get("assay-held-back") for s in downloads if s.status == 200] == ["0"] * 4
        assert statuses == [200, 200, 429, 200, 200, 429, 429, 429, 429, 429]
        assert orjson.loads(downloads[2].body)["detail"] == PER_PRINCIPAL
        assert downloads[2].headers["retry-after"] == "10"
        assert {orjson.loads(s.body)["detail"] for s in downloads[5:]} == {POOL_BUSY}

        # The stalled ones are cut off after the send timeout and recorded as aborted.
        started = {s.headers["assay-export-id"] for s in downloads if s.status == 200}
        deadline = time.monotonic() + 60
        while True:
            rows = (
                await session.execute(
                    text("SELECT id::text, status, aborted_reason FROM exports WHERE id = ANY(CAST(:ids AS uuid[]))"),
                    {"ids": list(started)},
                )
            ).all()
            await session.commit()
            if {(r.status, r.aborted_reason) for r in rows} == {
                ("aborted", "send_timeout")
            } or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sorted((r.status, r.aborted_reason) for r in rows) == [("aborted", "send_timeout")] * 4
    finally:
        for s in downloads:
            s.sock.close()

    # Their slots are free again: a download read to the end is complete.
    response = httpx.get(f"{server.url}{path}", headers=bearer(a), timeout=60)
    assert response.status_code == 200
    assert len(response.content.splitlines()) == ITEMS
    manifest = httpx.get(f"{server.url}/api/v1/exports/{response.headers['Assay-Export-Id']}", headers=bearer(a))
    assert (manifest.json()["status"], manifest.json()["rows"]) == ("complete", ITEMS)
