"""A batch upload cut off halfway leaves nothing behind, and the retry imports it whole.

Two ways to cut it: the client goes away in the middle of the body (logged as 499, not a 500 with a
traceback), and the server process is killed (SIGKILL) while its import statement runs. Either way
no batch, no item and no staging table is left, and the same upload sent again imports every item.
"""

import asyncio
import time
import uuid
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Batch, Item, Role
from tests.factories import bearer, create_project, create_token, create_user, jsonl, native_items

BOUNDARY = "assay-fault-boundary"
IMPORT_RUNNING = text(
    """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
      AND query LIKE '%INSERT INTO items%import_staging%'
    """
)


def multipart(records: bytes) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="cut.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + records
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def nothing_left(session: AsyncSession) -> None:
    """No batch, no item, no staging table of any session."""
    assert await session.scalar(select(func.count()).select_from(Batch)) == 0
    assert await session.scalar(select(func.count()).select_from(Item)) == 0
    staging = "SELECT count(*) FROM pg_class WHERE relname = 'import_staging'"
    assert await session.scalar(text(staging)) == 0
    await session.commit()


async def upload(
    url: str, project_id: uuid.UUID, token: str, body: bytes, client: httpx.AsyncClient | None = None
) -> httpx.Response:
    """POST the upload to the server at `url`, or through `client` (the app in this process)."""
    headers = {**bearer(token), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if client is not None:
        return await client.post(f"/api/v1/projects/{project_id}/batches", content=body, headers=headers)
    async with httpx.AsyncClient(timeout=120) as own:
        return await own.post(f"{url}/api/v1/projects/{project_id}/batches", content=body, headers=headers)


async def setup(session: AsyncSession) -> tuple[uuid.UUID, str]:
    admin = await create_user(session, role=Role.admin)
    project = await create_project(session, admin)
    return project.id, await create_token(session, admin)


async def wait_for(condition, seconds: float, what: str, every: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        await asyncio.sleep(every)


async def test_client_gone_halfway_through_the_body(launch, session: AsyncSession) -> None:  # type: ignore[no-untyped-def]
    project_id, token = await setup(session)
    (server,) = launch(1)
    body = multipart(jsonl(native_items(2000)))
    address = urlsplit(server.url)
    _reader, writer = await asyncio.open_connection(address.hostname, address.port)
    head = (
        f"POST /api/v1/projects/{project_id}/batches HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body[: len(body) // 2])
    await writer.drain()
    await asyncio.sleep(0.5)  # the server is reading the body
    writer.close()  # and the client goes away
    await writer.wait_closed()

    async def logged() -> bool:
        return "request.aborted status=499" in server.log()

    await wait_for(logged, 15, "the server to log the aborted request")
    assert f"path=/api/v1/projects/{project_id}/batches" in server.log()
    assert "unhandled error" not in server.log()
    assert "Traceback" not in server.log()
    await nothing_left(session)

    retry = await upload(server.url, project_id, token, body)
    assert retry.status_code == 201, retry.text
    assert retry.json()["created"] == 2000
    assert await session.scalar(select(func.count()).select_from(Item)) == 2000


async def test_server_killed_mid_import(launch, session: AsyncSession, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    project_id, token = await setup(session)
    (victim,) = launch(1)
    body = multipart(jsonl(native_items(6000)))
    cut = asyncio.create_task(upload(victim.url, project_id, token, body))
    backend: list[int] = []

    async def inserting() -> bool:
        backend[:] = list(await session.scalars(IMPORT_RUNNING))
        await session.commit()
        return bool(backend) or cut.done()

    await wait_for(inserting, 120, "the import to reach its INSERT", every=0.005)
    assert backend, f"the import finished before it could be cut: {cut.result().status_code}"
    victim.kill()  # while the server's transaction is inserting the items
    try:
        await cut
        raise AssertionError("the upload was answered by a killed server")
    except httpx.TransportError:
        pass

    async def backend_gone() -> bool:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        gone = await session.scalar(query, {"pid": backend[0]}) == 0
        await session.commit()
        return gone

    await wait_for(backend_gone, 60, "PostgreSQL to end the dead server's connection")
    await nothing_left(session)

    retry = await upload("", project_id, token, body, client)  # to another server: the app in this process
    assert retry.status_code == 201, retry.text
    assert retry.json()["created"] == 6000
    assert await session.scalar(select(func.count()).select_from(Item)) == 6000
