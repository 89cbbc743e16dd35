"""What bounds an export: its own connection pool, slots per principal, and a send timeout.

An export holds a database connection (its REPEATABLE READ snapshot) for as long as the client
takes to read the body, so slow or stalled downloads must never take connections that raters
need:

- exports run on a separate engine of `ASSAY_EXPORT_POOL_SIZE` connections per server process
  (no overflow); when all are busy a new export is refused with 429 after waiting
  `POOL_WAIT_SECONDS`, while raters keep the main pool;
- one principal (an API token, or a browser session) streams at most
  `ASSAY_EXPORTS_PER_PRINCIPAL` exports at once, across every server process: each export takes
  one of that many transaction-scoped advisory locks with `pg_try_advisory_xact_lock` (never
  waiting; the lock ends with the snapshot's transaction, also when a process dies), else 429;
- a client that accepts no bytes for `ASSAY_EXPORT_SEND_TIMEOUT_SECONDS` is cut off, and the
  manifest of every export that did not send its last byte says `aborted`, with why.
"""

import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from server.auth.service import Principal
from server.config import settings
from server.db import make_engine
from server.errors import TooManyRequests

logger = logging.getLogger("assay.exports")

POOL_WAIT_SECONDS = 1  # how long a new export waits for a connection of the export pool before a 429
RETRY_AFTER_SECONDS = 10


def make_export_engine(url: str) -> AsyncEngine:
    return make_engine(url, pool_size=settings.export_pool_size, max_overflow=0, pool_timeout=POOL_WAIT_SECONDS)


def principal_key(principal: Principal) -> str:
    """Who is downloading: the API token, or the browser session (never the raw secret)."""
    if principal.token is not None:
        return f"token:{principal.token.id}"
    session = principal.session_token or ""
    return "session:" + hashlib.sha256(session.encode()).hexdigest()


def pool_busy() -> TooManyRequests:
    return TooManyRequests(
        f"The server is already sending as many exports as it can at once ({settings.export_pool_size}, "
        f"ASSAY_EXPORT_POOL_SIZE); retry in {RETRY_AFTER_SECONDS} seconds.",
        retry_after=RETRY_AFTER_SECONDS,
    )


def _slot_key(principal: str, slot: int) -> int:
    digest = hashlib.sha256(f"assay-export:{principal}:{slot}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def take_slot(connection: AsyncConnection, principal: str) -> None:
    """Take one of the principal's export slots for this transaction, or refuse with 429 (never waits)."""
    for slot in range(settings.exports_per_principal):
        taken = await connection.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _slot_key(principal, slot)}
        )
        if taken:
            return
    n = settings.exports_per_principal
    raise TooManyRequests(
        f"You are already downloading {n} export{'s' if n != 1 else ''} at once (ASSAY_EXPORTS_PER_PRINCIPAL); "
        f"let one finish, then retry.",
        retry_after=RETRY_AFTER_SECONDS,
    )


class Finishable(Protocol):
    @property
    def done(self) -> bool: ...

    async def finish(self, *, aborted_reason: str | None) -> None: ...


class SendTimeout(Exception):
    pass


class ExportResponse(StreamingResponse):
    """A streamed export that ends its job however the response ends.

    Each send must be accepted within `send_timeout` seconds; a client that stops reading is cut
    off. When the body is complete, the job finishes before the last (empty) message goes out.
    Whatever happens (the last byte sent, the client gone, a stall, an error), the body's
    generators are closed and `job.finish()` runs, shielded from cancellation, so the snapshot's
    connection goes back to its pool and the manifest says `complete` or `aborted`.
    """

    def __init__(
        self,
        job: Finishable,
        content: AsyncIterator[bytes],
        *,
        generators: list[AsyncIterator[bytes]],
        send_timeout: float,
        media_type: str,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.job, self.generators, self.send_timeout = job, generators, send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False) and self.job.done:
                # Every byte is out: the manifest says `complete` (with the body's sha256) before the
                # client sees the end, so a trainer who checks it right after the download finds it.
                with anyio.CancelScope(shield=True):
                    await self.job.finish(aborted_reason=None)
            try:
                with anyio.fail_after(self.send_timeout):
                    await send(message)
            except TimeoutError:
                raise SendTimeout from None

        reason: str | None = "error"
        try:
            await super().__call__(scope, receive, timed_send)
            reason = None if self.job.done else "disconnected"
        except SendTimeout:
            reason = "send_timeout"
            # Returning closes the connection (uvicorn: "returned without completing response").
        except (ClientDisconnect, OSError):
            reason = "disconnected"
        finally:
            with anyio.CancelScope(shield=True):
                for generator in self.generators:
                    await generator.aclose()  # type: ignore[attr-defined]
                await self.job.finish(aborted_reason=reason)
