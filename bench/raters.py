"""Simulated raters: closed loops of `next` then `judgment`, in client processes of their own.

One Python process cannot drive 100 raters without becoming the bottleneck (JSON and HTTP
parsing cost CPU), so the raters are split over client processes that start together and
send their samples back to the parent. Each rater has its own keep-alive connection, like a
browser tab, and is pinned to one server port (round-robin: a stand-in for a load balancer).
"""

import asyncio
import multiprocessing as mp
import queue
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

NEXT, SUBMIT = "next", "submit"
START_MARGIN_S = 0.5
REQUEST_TIMEOUT_S = 30.0
ERROR_BACKOFF_S = 0.05  # a failing rater must not spin and starve the others
MAX_ERROR_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Sample:
    kind: str
    started: float  # wall clock (time.time), comparable across client processes
    ended: float
    ms: float
    status: int  # 0 when no response came (connection error, timeout)


@dataclass
class ChildResult:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # first few, for the report
    error_count: int = 0
    cpu_s: float = 0.0


@dataclass(frozen=True)
class RaterPlan:
    project_id: str
    warmup_s: float
    duration_s: float


class _Rater:
    def __init__(self, client: httpx.AsyncClient, plan: RaterPlan, result: ChildResult) -> None:
        self.client, self.plan, self.result = client, plan, result

    def _error(self, kind: str, detail: str) -> None:
        self.result.error_count += 1
        if len(self.result.errors) < MAX_ERROR_EXAMPLES:
            self.result.errors.append(f"{kind}: {detail[:300]}")

    async def _call(self, kind: str, path: str, body: dict[str, Any] | None) -> httpx.Response | None:
        started, clock = time.time(), time.perf_counter()
        try:
            response = await self.client.post(path, json=body)
        except httpx.HTTPError as exc:
            self._error(kind, f"{type(exc).__name__}: {exc}")
            self.result.samples.append(Sample(kind, started, time.time(), 0.0, 0))
            return None
        ms = (time.perf_counter() - clock) * 1000
        self.result.samples.append(Sample(kind, started, time.time(), ms, response.status_code))
        return response

    async def cycle(self) -> bool:
        """One next + judgment; False when the queue has nothing left for this rater."""
        response = await self._call(NEXT, f"/api/v1/projects/{self.plan.project_id}/assignments/next", None)
        if response is None or response.status_code not in (200, 204):
            if response is not None:
                self._error(NEXT, f"HTTP {response.status_code} {response.text}")
            await asyncio.sleep(ERROR_BACKOFF_S)
            return True
        if response.status_code == 204:
            return False
        assignment = response.json()
        choice = assignment["item"]["candidates"][0]["id"]
        submitted = await self._call(SUBMIT, f"/api/v1/assignments/{assignment['id']}/judgment", {"choice": choice})
        if submitted is not None and submitted.status_code != 201:
            self._error(SUBMIT, f"HTTP {submitted.status_code} {submitted.text}")
        if submitted is None or submitted.status_code != 201:
            await asyncio.sleep(ERROR_BACKOFF_S)
        return True

    async def run_until(self, stop_at: float) -> None:
        while time.time() < stop_at and await self.cycle():
            pass


def _client(base_url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=REQUEST_TIMEOUT_S,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),  # one browser tab
    )


async def _child(
    raters: list[tuple[str, str]], plan: RaterPlan, ready: "mp.Queue[int]", start: "mp.Queue[float]"
) -> ChildResult:
    result = ChildResult()
    clients = [_client(url, token) for url, token in raters]
    try:
        # Open every keep-alive connection before the clock starts.
        await asyncio.gather(*(c.get("/healthz") for c in clients))
        ready.put(len(clients))
        start_at = await asyncio.to_thread(start.get)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop_at = start_at + plan.warmup_s + plan.duration_s
        await asyncio.gather(*(_Rater(c, plan, result).run_until(stop_at) for c in clients))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    result.cpu_s = time.process_time()
    return result


def _child_main(
    raters: list[tuple[str, str]],
    plan: RaterPlan,
    ready: "mp.Queue[int]",
    start: "mp.Queue[float]",
    results: "mp.Queue[ChildResult]",
) -> None:
    try:
        results.put(asyncio.run(_child(raters, plan, ready, start)))
    except BaseException as exc:
        ready.put(-1)  # unblock the parent if we died before saying ready
        results.put(ChildResult(errors=[f"client process failed: {exc!r}"], error_count=1))
        raise


def _spread(urls: list[str], tokens: list[str], processes: int) -> list[list[tuple[str, str]]]:
    """Rater i talks to server i mod N and lives in client process i mod P."""
    pinned = [(urls[i % len(urls)], token) for i, token in enumerate(tokens)]
    return [pinned[p::processes] for p in range(processes)]


@dataclass
class PhaseSamples:
    window: tuple[float, float]
    children: list[ChildResult]

    def in_window(self, kind: str) -> list[Sample]:
        low, high = self.window
        return [s for c in self.children for s in c.samples if s.kind == kind and s.started >= low and s.ended <= high]

    @property
    def error_count(self) -> int:
        return sum(c.error_count for c in self.children)

    @property
    def errors(self) -> list[str]:
        return [e for c in self.children for e in c.errors][:MAX_ERROR_EXAMPLES]

    @property
    def client_cpu_s(self) -> float:
        return sum(c.cpu_s for c in self.children)


def _wait_ready(ready: "mp.Queue[int]", workers: list[Any], timeout_s: float) -> None:
    """Wait for every client to say ready; fail fast if one dies first (e.g. on import)."""
    deadline = time.monotonic() + timeout_s
    pending = len(workers)
    while pending:
        try:
            if ready.get(timeout=0.5) < 0:
                raise RuntimeError("a rater client process failed to start")
            pending -= 1
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers) or time.monotonic() > deadline:
                raise RuntimeError("a rater client process died or stalled before it was ready") from None


def _collect(results: "mp.Queue[ChildResult]", processes: int, timeout_s: float) -> list[ChildResult]:
    children: list[ChildResult] = []
    for _ in range(processes):
        try:
            children.append(results.get(timeout=timeout_s))
        except queue.Empty:
            children.append(ChildResult(errors=["client process sent no result"], error_count=1))
    return children


def run_rater_phase(urls: list[str], tokens: list[str], plan: RaterPlan, processes: int = 2) -> PhaseSamples:
    """Run the raters in `processes` client processes and return every sample (blocking)."""
    context = mp.get_context("spawn")  # a clean interpreter: no inherited event loop or engine
    ready: mp.Queue[int] = context.Queue()
    start: mp.Queue[float] = context.Queue()
    results: mp.Queue[ChildResult] = context.Queue()
    workers = [
        context.Process(target=_child_main, args=(group, plan, ready, start, results), daemon=True)
        for group in _spread(urls, tokens, processes)
    ]
    for worker in workers:
        worker.start()
    try:
        _wait_ready(ready, workers, timeout_s=60)
        start_at = time.time() + START_MARGIN_S
        for _ in workers:
            start.put(start_at)
        children = _collect(results, processes, timeout_s=plan.warmup_s + plan.duration_s + 2 * REQUEST_TIMEOUT_S + 30)
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    window_start = start_at + plan.warmup_s
    return PhaseSamples(window=(window_start, window_start + plan.duration_s), children=children)


async def sequential_cycles(base_url: str, token: str, project_id: str, cycles: int, warmup: int) -> ChildResult:
    """One rater, no concurrency: `cycles` next + judgment pairs after `warmup` unrecorded ones."""
    result = ChildResult()
    plan = RaterPlan(project_id=project_id, warmup_s=0, duration_s=0)
    async with _client(base_url, token) as client:
        rater = _Rater(client, plan, result)
        for _ in range(warmup):
            await rater.cycle()
        result.samples.clear()
        for _ in range(cycles):
            if not await rater.cycle():
                break
    return result
