"""A small typed client for Assay's trainer API, over HTTP with a token.

    async with AssayClient("http://assay:8000", token) as assay:
        pulled = await assay.download_export(project_id, Path("rows.jsonl"), after=cursor)
        model = await assay.report_model(project_id, ModelReport(...))
        async for page in assay.open_items(project_id):
            ...

It retries with exponential backoff while the server cannot be reached, answers with a 5xx, or
asks it to slow down (429, honouring Retry-After), and raises `ApiError` with the server's own
message otherwise. Every call it makes is safe to repeat (exports are reads; a model report or a
post of scores sent twice keeps the first). It imports nothing from the
server, so it works wherever httpx is installed; tests pass an httpx transport to drive the
app in-process.
"""

import asyncio
import functools
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

log = logging.getLogger("assay.client")


def _retried(status: int) -> bool:
    """A server error (a failed transaction, a restart, a proxy) or "too many requests": try again later."""
    return status >= 500 or status == 429


class ApiError(Exception):
    """The server refused a request; `detail` is its explanation."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


class Unreachable(Exception):
    """The server could not be reached (or kept answering 5xx) after every retry."""


@dataclass(frozen=True)
class ExportPull:
    next_cursor: str
    held_back: int
    rows: int
    export_id: str | None
    revisions: int = 0  # judgments in this pull that revise earlier ones (Assay-Revisions)


@dataclass(frozen=True)
class ModelReport:
    features: str
    cursor_to: str
    metrics: dict[str, Any]
    cursor_from: str | None = None
    artefact_path: str | None = None
    artefact_sha256: str | None = None


@dataclass(frozen=True)
class RewardModelInfo:
    id: uuid.UUID
    version: int
    features: str
    cursor_from: str | None
    cursor_to: str
    metrics: dict[str, Any]
    artefact_path: str | None
    artefact_sha256: str | None
    created: bool = False  # True when this report made a new version, False for a repeat

    @classmethod
    def from_json(cls, data: dict[str, Any], *, created: bool = False) -> "RewardModelInfo":
        return cls(
            id=uuid.UUID(data["id"]),
            version=int(data["version"]),
            features=data["features"],
            cursor_from=data["cursor_from"],
            cursor_to=data["cursor_to"],
            metrics=dict(data["metrics"]),
            artefact_path=data["artefact_path"],
            artefact_sha256=data["artefact_sha256"],
            created=created,
        )


@dataclass(frozen=True)
class Candidate:
    id: uuid.UUID
    text: str | None
    messages: list[dict[str, str]] | None


@dataclass(frozen=True)
class OpenItem:
    id: uuid.UUID
    prompt: str | list[dict[str, str]]
    candidates: list[Candidate] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "OpenItem":
        return cls(
            id=uuid.UUID(data["id"]),
            prompt=data["prompt"],
            candidates=[
                Candidate(id=uuid.UUID(c["id"]), text=c["text"], messages=c["messages"]) for c in data["candidates"]
            ],
        )


@dataclass(frozen=True)
class Assignment:
    """An item leased to judge: candidates in the order shown (`label` A, B, …)."""

    id: uuid.UUID
    item_id: uuid.UUID
    prompt: str | list[dict[str, str]]
    candidates: list[Candidate] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Assignment":
        item = data["item"]
        return cls(
            id=uuid.UUID(data["id"]),
            item_id=uuid.UUID(item["id"]),
            prompt=item["prompt"],
            candidates=[
                Candidate(id=uuid.UUID(c["id"]), text=c.get("text"), messages=c.get("messages"))
                for c in item["candidates"]
            ],
        )


@dataclass(frozen=True)
class Score:
    item_id: uuid.UUID
    p: float
    uncertainty: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item_id": str(self.item_id), "p": self.p}
        if self.uncertainty is not None:
            out["uncertainty"] = self.uncertainty
        return out


@dataclass(frozen=True)
class ScoresResult:
    model_version: int
    scored: int
    prioritised: int
    active_learning: bool


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


class AssayClient:
    """Trainer and judge endpoints of one Assay server, authenticated with an API token."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 120.0,
        retries: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "assay-client"},
            transport=transport,
            timeout=timeout,
        )
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _wait(self, attempt: int, reason: str, retry_after: str | None = None) -> None:
        if attempt >= self.retries:
            raise Unreachable(f"Gave up after {attempt + 1} attempts: {reason}")
        delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.8, 1.2)
        if retry_after is not None and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), self.max_backoff))
        log.warning("server unavailable (%s); retrying in %.1f s", reason, delay)
        await self._sleep(delay)

    async def _call(self, run: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        """Run one request, retrying transport failures, 5xx and 429 with exponential backoff."""
        attempt = 0
        while True:
            try:
                response = await run()
            except httpx.TransportError as exc:
                await self._wait(attempt, f"{type(exc).__name__}: {exc}")
            else:
                if not _retried(response.status_code):
                    if response.is_error:
                        raise ApiError(response.status_code, _detail(response))
                    return response
                reason = f"HTTP {response.status_code}: {_detail(response)}"
                await self._wait(attempt, reason, response.headers.get("Retry-After"))
            attempt += 1

    async def download_export(
        self,
        project_id: uuid.UUID | str,
        dest: Path,
        *,
        after: str | None = None,
        format: str = "trl",
        ids: bool = False,
        on_rows: Callable[[int], None] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> ExportPull:
        """Stream the rows finalised since `after` into `dest` (JSONL), whole or not at all.

        With `ids`, rows carry `judgment_id`, `revision` and `deleted`: keep, per judgment, the rows
        of its highest revision (server/trainer/store.py:latest does)."""
        params = {"format": format} | ({"after": after} if after else {}) | ({"ids": "true"} if ids else {})
        params |= dict(options or {})  # further export parameters (granularity, aggregation, raters, ...)
        url = f"/api/v1/projects/{project_id}/export"
        rows = 0

        async def run() -> httpx.Response:
            nonlocal rows
            rows = 0
            async with self._http.stream("GET", url, params=params) as response:
                if response.is_error:
                    await response.aread()
                    return response
                with dest.open("wb") as out:
                    async for line in response.aiter_lines():
                        if line:
                            out.write(line.encode() + b"\n")
                            rows += 1
                            if on_rows is not None and rows % 1000 == 0:
                                on_rows(rows)
                return response

        response = await self._call(run)
        if on_rows is not None:
            on_rows(rows)
        return ExportPull(
            next_cursor=response.headers["Assay-Next-Cursor"],
            held_back=int(response.headers.get("Assay-Held-Back", "0")),
            rows=rows,
            export_id=response.headers.get("Assay-Export-Id"),
            revisions=int(response.headers.get("Assay-Revisions", "0")),
        )

    async def report_model(self, project_id: uuid.UUID | str, report: ModelReport) -> RewardModelInfo:
        """Report a trained model; reporting the same run again returns the version it got."""
        response = await self._call(
            lambda: self._http.post(f"/api/v1/projects/{project_id}/reward-models", json=asdict(report))
        )
        return RewardModelInfo.from_json(response.json(), created=response.status_code == 201)

    async def list_models(self, project_id: uuid.UUID | str) -> list[RewardModelInfo]:
        response = await self._call(lambda: self._http.get(f"/api/v1/projects/{project_id}/reward-models"))
        return [RewardModelInfo.from_json(m) for m in response.json()]

    async def open_items(self, project_id: uuid.UUID | str, *, page_size: int = 500) -> AsyncIterator[list[OpenItem]]:
        """Pages of items still waiting for judgments."""
        after: str | None = None
        url = f"/api/v1/projects/{project_id}/open-items"
        while True:
            params: dict[str, str | int] = {"limit": page_size} | ({"after": after} if after else {})
            response = await self._call(functools.partial(self._http.get, url, params=params))
            page = response.json()
            yield [OpenItem.from_json(i) for i in page["items"]]
            after = page["next_cursor"]
            if after is None:
                return

    async def post_scores(self, project_id: uuid.UUID | str, version: int, scores: list[Score]) -> ScoresResult:
        """Post one model's scores of items (at most 10,000 per call)."""
        body = {"scores": [s.to_json() for s in scores]}
        response = await self._call(
            lambda: self._http.post(f"/api/v1/projects/{project_id}/reward-models/{version}/scores", json=body)
        )
        data = response.json()
        return ScoresResult(
            model_version=data["model_version"],
            scored=data["scored"],
            prioritised=data["prioritised"],
            active_learning=data["active_learning"],
        )

    async def next_assignment(self, project_id: uuid.UUID | str) -> Assignment | None:
        """Lease the next item to judge (a model judge: the next item of the model phase); None: nothing now."""
        response = await self._call(lambda: self._http.post(f"/api/v1/projects/{project_id}/assignments/next"))
        return None if response.status_code == 204 else Assignment.from_json(response.json())

    async def submit_judgment(
        self,
        assignment_id: uuid.UUID | str,
        *,
        choice: uuid.UUID | str,
        confidence: float | None = None,
        rationale: str | None = None,
    ) -> dict[str, Any]:
        """Send a verdict (a model judge adds its confidence, 0 to 1); a retry returns the stored one."""
        body: dict[str, Any] = {"choice": str(choice)}
        if confidence is not None:
            body["confidence"] = confidence
        if rationale is not None:
            body["rationale"] = rationale
        response = await self._call(lambda: self._http.post(f"/api/v1/assignments/{assignment_id}/judgment", json=body))
        result: dict[str, Any] = response.json()
        return result
