"""Request bodies: small everywhere, large only for someone who may upload, and never read before
the caller is known on an upload route.

The in-process tests count how many body chunks the app pulls (so "not read" is exact); the last
test sends an anonymous 40 MB body to a real server process and measures its memory.
"""

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Role, Scope
from tests.factories import bearer, create_project, create_token, create_user
from tests.security.server import MB, ServerProcess, start_server
from tests.web.admin import login_as

CHUNK = 64 * 1024
SMALL_LIMIT = "The request body is larger than the 1 MB limit for this request."


class Body:
    """A request body of `size` bytes sent in chunks, counting how many the server pulled."""

    def __init__(self, size: int, head: bytes = b"") -> None:
        self.size, self.head, self.pulled = size, head, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.size:
            self.pulled += 1
            chunk = (self.head if sent == 0 else b"") or b"x" * CHUNK
            sent += len(chunk)
            yield chunk


def declared(size: int, content_type: str = "application/json") -> dict[str, str]:
    return {"Content-Type": content_type, "Content-Length": str(size)}


class TestSmallLimitEverywhere:
    async def test_declared_large_json_refused_unread(self, client: httpx.AsyncClient) -> None:
        body = Body(40 * MB)
        response = await client.post("/api/v1/projects", content=body, headers=declared(40 * MB))
        assert response.status_code == 413
        assert response.json() == {"detail": SMALL_LIMIT}
        assert body.pulled == 0

    async def test_chunked_json_refused_after_the_limit(self, client: httpx.AsyncClient) -> None:
        body = Body(40 * MB)
        response = await client.post("/api/v1/projects", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert body.pulled <= MB // CHUNK + 1

    async def test_login_form_refused_unread(self, client: httpx.AsyncClient) -> None:
        body = Body(40 * MB)
        headers = declared(40 * MB, "multipart/form-data; boundary=b")
        response = await client.post("/login", content=body, headers=headers)
        assert response.status_code == 413
        assert "The request body is larger than the 1 MB limit for this request." in response.text
        assert body.pulled == 0

    async def test_a_normal_body_passes(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        token = await create_token(session, admin)
        response = await client.post("/api/v1/projects", json={"name": "x" * 200}, headers=bearer(token))
        assert response.status_code == 201


class TestUploadRoutes:
    async def test_anonymous_upload_is_not_read(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        body = Body(100 * MB)
        response = await client.post(
            f"/api/v1/projects/{project.id}/batches",
            content=body,
            headers=declared(100 * MB, "multipart/form-data; boundary=b"),
        )
        assert response.status_code == 401
        assert body.pulled == 0

    async def test_token_without_items_write_is_not_read(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(trainer,))
        body = Body(100 * MB)
        response = await client.post(
            f"/api/v1/projects/{project.id}/batches",
            content=body,
            headers={
                **declared(100 * MB, "multipart/form-data; boundary=b"),
                **bearer(await create_token(session, trainer)),
            },
        )
        assert response.status_code == 403
        assert body.pulled == 0

    async def test_rater_session_on_the_upload_page_gets_the_small_limit(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        await login_as(client, session, Role.rater)
        body = Body(100 * MB)
        # A plain form carries its CSRF token in the body, so the page reads it: at most the small limit.
        response = await client.post(
            f"/admin/projects/{project.id}/batches",
            content=body,
            headers=declared(100 * MB, "multipart/form-data; boundary=b"),
        )
        assert response.status_code == 413
        assert body.pulled == 0

    async def test_admin_token_gets_the_upload_limit(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        content = b"".join(
            b'{"prompt": "%d %s", "responses": [{"text": "a"}, {"text": "b"}]}\n' % (i, b"x" * 400)
            for i in range(5_000)
        )
        assert len(content) > 2 * MB
        response = await client.post(
            f"/api/v1/projects/{project.id}/batches",
            files={"file": ("big.jsonl", content)},
            headers=bearer(await create_token(session, admin)),
        )
        assert response.status_code == 201
        assert response.json()["created"] == 5_000


class TestTrainerSession:
    async def test_a_trainers_browser_session_cannot_import(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        trainer, csrf = await login_as(client, session, Role.trainer)
        project = await create_project(session, admin, members=(trainer,))
        response = await client.post(
            f"/api/v1/projects/{project.id}/batches",
            files={"file": ("a.jsonl", b'{"prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]}\n')},
            headers={"X-CSRF-Token": csrf},
        )
        assert response.status_code == 403
        assert response.json()["detail"] == (
            "A trainer's browser session cannot use the 'items:write' scope; use an API token an admin gave that scope."
        )

    async def test_a_trainer_token_with_items_write_still_can(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(trainer,))
        response = await client.post(
            f"/api/v1/projects/{project.id}/batches",
            files={"file": ("a.jsonl", b'{"prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]}\n')},
            headers=bearer(await create_token(session, trainer, Scope.items_write)),
        )
        assert response.status_code == 201


def post_raw(url: str, path: str, size: int) -> int:
    """POST `size` bytes of JSON-looking body over a plain socket, stopping when the server answers or
    closes; returns the status code. (An HTTP client would wait to finish sending before reading.)"""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as connection:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        connection.sendall(head.encode())
        answered = threading.Event()
        received = bytearray()

        def read() -> None:
            while b"\r\n" not in received and (data := connection.recv(4096)):
                received.extend(data)
            answered.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        chunk = b"[" + b"0," * (CHUNK // 2 - 1) + b"0"
        sent = 0
        try:
            while sent < size and not answered.is_set():
                connection.sendall(chunk[: size - sent])
                sent += len(chunk)
        except OSError:
            pass  # the server answered and closed: what it had not read, it never will
        reader.join(timeout=60)
    return int(received.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[ServerProcess]:
    process = start_server(database_url)
    yield process
    process.stop()


def test_anonymous_40_mb_body_leaves_server_memory_flat(server: ServerProcess, engine) -> None:  # type: ignore[no-untyped-def]
    post_raw(server.url, "/api/v1/projects", 1024)  # the route's first request loads what it loads
    baseline = server.start_measuring()
    status = post_raw(server.url, "/api/v1/projects", 40 * MB)
    growth = server.peak_growth(baseline)
    assert status == 413
    assert growth < 20 * MB, f"the server's peak memory grew by {growth / MB:.0f} MB"
