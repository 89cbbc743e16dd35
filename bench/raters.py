"""Simulated raters: closed loops of `next` then `judgment` (or, in "page" mode, the rater page's
htmx submit that returns the item after the next), in client processes of their own.

One Python process cannot drive 100 raters without becoming the bottleneck (JSON and HTTP
parsing cost CPU), so the raters are split over client processes that start together and
send their samples back to the parent. Each rater has its own keep-alive connection, like a
browser tab, and is pinned to one server port (round-robin: a stand-in for a load balancer).
"""

import asyncio
import multiprocessing as mp
import queue
import random
import re
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.accounts import PASSWORD

NEXT, SUBMIT = "next", "submit"
SWAP = "swap"  # the rater page: submit a verdict, get the item after the next (leased and rendered)
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
    server_ms: float = 0.0  # the server's own time (Server-Timing header), when it sends one


@dataclass
class ChildResult:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # first few, for the report
    error_count: int = 0
    cpu_s: float = 0.0
    out_of_work: int = 0  # raters who found nothing left before the phase ended (the queue ran out)


@dataclass(frozen=True)
class RaterPlan:
    project_id: str
    warmup_s: float
    duration_s: float
    mode: str = "api"  # "api": next + judgment with a token; "page": the rater page's htmx swap
    think_s: float = 0.0  # page mode: mean time a rater looks at an item before submitting (0.5x-1.5x)


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
        while time.time() < stop_at:
            if not await self.cycle():
                self.result.out_of_work += 1
                return


_SLOT = re.compile(r'<section class="slot item" id="a-([0-9a-f-]+)"')
_FIRST_CHOICE = re.compile(r'name="verdict" value="(c:[0-9a-f-]+:)"')


def _slots(html: str) -> list[tuple[str, str]]:
    """(assignment id, first candidate's verdict value) of each item section of a page or fragment."""
    parts = _SLOT.split(html)[1:]
    return [(parts[i], m.group(1)) for i in range(0, len(parts), 2) if (m := _FIRST_CHOICE.search(parts[i + 1]))]


class _PageRater(_Rater):
    """A browser on the rater page: log in, open the page (current + next item), then submit
    verdicts as htmx does; each answer carries the item after the next, which becomes the next."""

    queue: list[tuple[str, str]]

    async def start(self, email: str, password: str) -> None:
        login = await self.client.post("/api/v1/auth/session", json={"email": email, "password": password})
        login.raise_for_status()
        self.client.headers.update(
            {"X-CSRF-Token": login.json()["csrf_token"], "HX-Request": "true", "HX-Target": "queue"}
        )
        page = await self.client.get(f"/projects/{self.plan.project_id}/label")
        page.raise_for_status()
        self.queue = _slots(page.text)
        if not self.queue:  # the page asks for its queue by POST once loaded (a GET never leases)
            queue = await self.client.post(f"/projects/{self.plan.project_id}/label/queue")
            queue.raise_for_status()
            self.queue = _slots(queue.text)

    async def cycle(self) -> bool:
        if not self.queue:
            return False
        if self.plan.think_s:
            await asyncio.sleep(self.plan.think_s * random.uniform(0.5, 1.5))
        (assignment, verdict), ahead = self.queue[0], self.queue[1:]
        data = {"verdict": verdict, "ahead": ",".join(a for a, _ in ahead)}
        started, clock = time.time(), time.perf_counter()
        try:
            response = await self.client.post(f"/assignments/{assignment}/judge", data=data)
        except httpx.HTTPError as exc:
            self._error(SWAP, f"{type(exc).__name__}: {exc}")
            self.result.samples.append(Sample(SWAP, started, time.time(), 0.0, 0))
            await asyncio.sleep(ERROR_BACKOFF_S)
            return True
        ms = (time.perf_counter() - clock) * 1000
        timing = _SERVER_TIMING.search(response.headers.get("server-timing", ""))
        server_ms = float(timing.group(1)) if timing else 0.0
        self.result.samples.append(Sample(SWAP, started, time.time(), ms, response.status_code, server_ms))
        if response.status_code != 200:
            self._error(SWAP, f"HTTP {response.status_code} {response.text[:200]}")
            await asyncio.sleep(ERROR_BACKOFF_S)
            return True
        self.queue = ahead + _slots(response.text)
        return True


_SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")


def _client(base_url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"} if token else {},
        timeout=REQUEST_TIMEOUT_S,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),  # one browser tab
    )


async def _child(
    raters: list[tuple[str, str]], plan: RaterPlan, ready: "mp.Queue[int]", start: "mp.Queue[float]"
) -> ChildResult:
    result = ChildResult()
    page = plan.mode == "page"
    # Page raters carry an email where API raters carry a token; they log in with the bench password.
    clients = [_client(url, "" if page else credential) for url, credential in raters]
    try:
        # Open every keep-alive connection (and, on the page, log in and open it) before the clock starts.
        await asyncio.gather(*(c.get("/healthz") for c in clients))
        workers: list[_Rater]
        if page:
            page_raters = [_PageRater(c, plan, result) for c in clients]
            logins = asyncio.Semaphore(4)  # each login hashes a password: a stampede would time out

            async def open_page(rater: _PageRater, email: str) -> None:
                async with logins:
                    try:
                        await rater.start(email, PASSWORD)
                    except httpx.TransportError:
                        # The keep-alive connection opened above sat idle while 100 logins queued, past
                        # the server's keep-alive timeout (uvicorn's 5 s): open a new one, once.
                        await rater.start(email, PASSWORD)

            await asyncio.gather(*(open_page(r, email) for r, (_, email) in zip(page_raters, raters, strict=True)))
            workers = list(page_raters)
        else:
            workers = [_Rater(c, plan, result) for c in clients]
        ready.put(len(clients))
        start_at = await asyncio.to_thread(start.get)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop_at = start_at + plan.warmup_s + plan.duration_s
        await asyncio.gather(*(w.run_until(stop_at) for w in workers))
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
    def out_of_work(self) -> int:
        return sum(c.out_of_work for c in self.children)

    @property
    def client_cpu_s(self) -> float:
        return sum(c.cpu_s for c in self.children)


READY_TIMEOUT_S = 300.0


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


def run_rater_phase(
    urls: list[str],
    tokens: list[str],
    plan: RaterPlan,
    processes: int = 2,
    window_meter: AbstractContextManager[Any] | None = None,
) -> PhaseSamples:
    """Run the raters in `processes` client processes and return every sample (blocking).
    `window_meter` (e.g. a CpuMeter) is entered when the measured window opens and left when it
    closes, so that what it measures leaves out the clients' start (the page's logins) and warm-up."""
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
        # The page's raters log in first (a password hash each): minutes on a loaded 2-core machine.
        _wait_ready(ready, workers, timeout_s=READY_TIMEOUT_S)
        start_at = time.time() + START_MARGIN_S
        for _ in workers:
            start.put(start_at)
        timers = []
        if window_meter is not None:
            opens, closes = start_at + plan.warmup_s, start_at + plan.warmup_s + plan.duration_s
            timers = [
                threading.Timer(max(0.0, opens - time.time()), window_meter.__enter__),
                threading.Timer(max(0.0, closes - time.time()), window_meter.__exit__, (None, None, None)),
            ]
            for timer in timers:
                timer.start()
        children = _collect(results, processes, timeout_s=plan.warmup_s + plan.duration_s + 2 * REQUEST_TIMEOUT_S + 30)
        for timer in timers:
            timer.join()
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
