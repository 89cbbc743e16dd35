"""The trainer worker against the real app (in-process over httpx, and `assay worker --once` against a
live server): one cycle end to end, resume after a crash, no double training, retries."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.client import AssayClient, Unreachable
from server.models import Candidate, Item, ItemScore, Judgment, Project, RewardModel, Role, Scope
from server.trainer.model import HashedNgrams
from server.trainer.store import Store
from server.trainer.worker import Worker
from tests.factories import bearer, create_project, create_token, create_user, import_items, next_item

ROOT = Path(__file__).resolve().parents[2]
GOOD = "Sure, here is a careful and kind answer about"
BAD = "No. Go away"


def items(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"q-{i:04d}",
            "prompt": f"Tell me about subject number {i}?",
            # Which side is good alternates, so position alone teaches nothing.
            "responses": [{"text": f"{GOOD} subject {i}."}, {"text": f"{BAD}, {i}!"}][:: 1 if i % 2 else -1],
        }
        for i in range(start, start + n)
    ]


class Env:
    def __init__(self, project: Project, rater: str, trainer: str, admin: str) -> None:
        self.project, self.rater, self.trainer, self.admin = project, rater, trainer, admin


async def setup(session: AsyncSession, n: int = 60, **settings: Any) -> Env:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    trainer = await create_user(session, role=Role.trainer)
    project = await create_project(session, admin, members=(rater, trainer), **settings)
    await import_items(session, project, admin, items(n))
    return Env(
        project,
        await create_token(session, rater),
        await create_token(session, trainer, Scope.export_read, Scope.reward_models_write),
        await create_token(session, admin),
    )


async def rate(client: httpx.AsyncClient, env: Env, count: int) -> None:
    """The rater judges `count` items, always preferring the careful answer."""
    for _ in range(count):
        a = (await next_item(client, env.project, env.rater)).json()
        good = next(c for c in a["item"]["candidates"] if c["text"].startswith(GOOD))
        response = await client.post(
            f"/api/v1/assignments/{a['id']}/judgment", json={"choice": good["id"]}, headers=bearer(env.rater)
        )
        assert response.status_code == 201


class Flaky(httpx.AsyncBaseTransport):
    """The app, except that requests matching `fails` find the server down (as many times as `times`)."""

    def __init__(self, app: Any, fails: Callable[[httpx.Request], bool], times: int = 10**6) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.fails = fails
        self.times = times
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refused < self.times and self.fails(request):
            self.refused += 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


class Failing(httpx.AsyncBaseTransport):
    """The app, except that requests matching `fails` get a 500 (as a failed transaction would), `times` times."""

    def __init__(self, app: Any, fails: Callable[[httpx.Request], bool], times: int) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.fails = fails
        self.times = times
        self.failed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failed < self.times and self.fails(request):
            self.failed += 1
            return httpx.Response(500, json={"detail": "Internal Server Error"}, request=request)
        return await self.inner.handle_async_request(request)


def worker(
    app: Any,
    env: Env,
    data_dir: Path,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    slept: list[float] | None = None,
    **options: Any,
) -> Worker:
    """A worker whose client drives the app in-process; backoff sleeps are recorded, not waited."""

    async def record(seconds: float) -> None:
        if slept is not None:
            slept.append(seconds)

    client = AssayClient(
        "http://testserver", env.trainer, transport=transport or httpx.ASGITransport(app=app), sleep=record, **options
    )
    return Worker(
        client, Store(data_dir), server="http://testserver", project_id=str(env.project.id), featurizer=HashedNgrams()
    )


async def models(session: AsyncSession) -> list[RewardModel]:
    return list(await session.scalars(select(RewardModel).order_by(RewardModel.version)))


class TestOneCycle:
    async def test_pull_train_report_score_then_uncertain_items_go_first(self, app, client, session, tmp_path) -> None:
        env = await setup(session, active_learning=True)
        await rate(client, env, 45)
        result = await worker(app, env, tmp_path).cycle()
        assert (result.pulled, result.trained, result.version) == (45, True, 1)
        [reported] = await models(session)
        m = reported.metrics
        assert m["n_judgments"] == 45
        assert m["n_train"] + m["n_validation"] == m["n_pairs"] == 45
        assert m["accuracy"] >= 0.8  # the preference is easy to learn
        assert m["features"] == reported.features == "hashed-char-ngrams-2-4-2^18"
        assert reported.cursor_to == json.loads((tmp_path / "state.json").read_text())["cursor"]
        assert Path(reported.artefact_path or "").is_file()
        # Every open item is scored and prioritised, and the next one served is the least certain.
        assert result.scored == 15
        scores = {s.item_id: s for s in await session.scalars(select(ItemScore))}
        assert len(scores) == 15
        most_uncertain = await session.scalar(
            select(Item.id)
            .join(ItemScore, ItemScore.item_id == Item.id)
            .order_by(ItemScore.uncertainty.desc(), Item.seq)
        )
        assert most_uncertain is not None
        served = (await next_item(client, env.project, env.rater)).json()["item"]["id"]
        assert served == str(most_uncertain)
        item = await session.get_one(Item, most_uncertain)
        assert item.priority_reason == f"uncertain: p={scores[most_uncertain].p:.2f} (model v1)"

    async def test_without_active_learning_scores_do_not_reorder(self, app, client, session, tmp_path) -> None:
        env = await setup(session)
        await rate(client, env, 45)
        result = await worker(app, env, tmp_path).cycle()
        assert (result.scored, result.prioritised) == (15, 0)
        assert await session.scalar(select(func.max(Item.priority))) == 0.0

    async def test_nothing_left_open_scores_nothing(self, app, client, session, tmp_path) -> None:
        env = await setup(session, n=30)
        await rate(client, env, 30)
        result = await worker(app, env, tmp_path).cycle()
        assert (result.trained, result.version, result.scored) == (True, 1, 0)

    async def test_too_few_judgments_train_nothing(self, app, client, session, tmp_path) -> None:
        env = await setup(session)
        await rate(client, env, 5)
        result = await worker(app, env, tmp_path).cycle()
        assert (result.pulled, result.trained, result.version) == (5, False, None)
        assert await models(session) == []


class TestNoDoubleTraining:
    async def test_a_second_cycle_without_new_judgments_does_not_train(self, app, client, session, tmp_path) -> None:
        env = await setup(session, active_learning=True)
        await rate(client, env, 45)
        await worker(app, env, tmp_path).cycle()
        again = await worker(app, env, tmp_path).cycle()
        assert (again.pulled, again.trained, again.version) == (0, False, 1)
        assert again.scored == 15  # still scores, with the model it has
        assert len(await models(session)) == 1
        assert len(list((tmp_path / "models").iterdir())) == 1

    async def test_new_judgments_are_pulled_from_the_stored_cursor(self, app, client, session, tmp_path) -> None:
        env = await setup(session)
        await rate(client, env, 40)
        await worker(app, env, tmp_path).cycle()
        await rate(client, env, 10)
        second = await worker(app, env, tmp_path).cycle()
        assert (second.pulled, second.trained, second.version) == (10, True, 2)
        v1, v2 = await models(session)
        assert (v1.metrics["n_judgments"], v2.metrics["n_judgments"], v2.metrics["new_judgments"]) == (40, 50, 10)
        assert v1.cursor_to != v2.cursor_to


class TestCrashes:
    async def test_crash_before_the_report_resumes_without_retraining(self, app, client, session, tmp_path) -> None:
        env = await setup(session)
        await rate(client, env, 45)
        down = Flaky(app, lambda r: r.method == "POST" and r.url.path.endswith("/reward-models"))
        with pytest.raises(Unreachable):
            await worker(app, env, tmp_path, transport=down, retries=2).cycle()
        state = json.loads((tmp_path / "state.json").read_text())
        assert state["trained"]["version"] is None  # trained and saved, not reported
        artefact = state["trained"]["artefact"]
        result = await worker(app, env, tmp_path).cycle()
        assert (result.trained, result.version) == (False, 1)
        [reported] = await models(session)
        assert reported.artefact_path == artefact

    async def test_crash_after_the_report_gets_the_same_version_back(self, app, client, session, tmp_path) -> None:
        env = await setup(session)
        await rate(client, env, 45)
        down = Flaky(app, lambda r: r.url.path.endswith("/open-items"))
        with pytest.raises(Unreachable):
            await worker(app, env, tmp_path, transport=down, retries=0).cycle()
        # As if the process died between the server's answer and saving the version: forget it.
        state = json.loads((tmp_path / "state.json").read_text())
        assert state["trained"]["version"] == 1
        state["trained"]["version"] = None
        (tmp_path / "state.json").write_text(json.dumps(state))
        result = await worker(app, env, tmp_path).cycle()
        assert (result.trained, result.version, result.scored) == (False, 1, 15)
        assert len(await models(session)) == 1

    async def test_crash_during_a_pull_moves_no_cursor(self, app, client, session, tmp_path) -> None:
        env = await setup(session)
        await rate(client, env, 40)
        await worker(app, env, tmp_path).cycle()
        cursor = json.loads((tmp_path / "state.json").read_text())["cursor"]
        await rate(client, env, 10)
        down = Flaky(app, lambda r: r.url.path.endswith("/export"))
        with pytest.raises(Unreachable):
            await worker(app, env, tmp_path, transport=down, retries=0).cycle()
        state = json.loads((tmp_path / "state.json").read_text())
        assert (state["cursor"], len(state["segments"])) == (cursor, 1)
        result = await worker(app, env, tmp_path).cycle()
        assert (result.pulled, result.version) == (10, 2)


class TestRetries:
    async def test_backs_off_while_the_server_is_down_then_carries_on(self, app, client, session, tmp_path) -> None:
        env = await setup(session)
        await rate(client, env, 45)
        down = Flaky(app, lambda r: True, times=3)
        slept: list[float] = []
        result = await worker(app, env, tmp_path, transport=down, slept=slept, retries=5, backoff=1.0).cycle()
        assert result.version == 1
        assert len(slept) == 3
        assert slept[0] < slept[1] < slept[2]  # 1, 2, 4 s with ±20 % jitter
        assert 0.8 <= slept[0] <= 1.2
        assert 3.2 <= slept[2] <= 4.8

    async def test_server_errors_are_retried_not_fatal(self, app, client, session, tmp_path) -> None:
        env = await setup(session, active_learning=True)
        await rate(client, env, 45)
        failing = Failing(app, lambda r: r.url.path.endswith("/scores"), times=2)
        slept: list[float] = []
        result = await worker(app, env, tmp_path, transport=failing, slept=slept, retries=5).cycle()
        assert (result.version, result.scored, failing.failed) == (1, 15, 2)
        assert len(slept) == 2

    async def test_refusals_are_not_retried(self, app, client, session, tmp_path) -> None:
        env = await setup(session)
        export_only = await create_token(session, await create_user(session, role=Role.trainer), Scope.export_read)
        env.trainer = export_only
        from server.client import ApiError

        with pytest.raises(ApiError) as refused:
            await worker(app, env, tmp_path).cycle()
        assert refused.value.status_code == 404  # not a member of the project


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(database_url: str) -> Iterator[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "ASSAY_ENVIRONMENT": "test", "ASSAY_DB_POOL_SIZE": "3"}
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "server.app:create_app", "--factory", "--port", str(port)]
    process = subprocess.Popen([*command, "--log-level", "warning"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class TestCommand:
    async def test_worker_once_against_a_live_server(self, live_server, client, session, tmp_path) -> None:
        env = await setup(session, active_learning=True)
        await rate(client, env, 45)
        args = ["--url", live_server, "--token", env.trainer, "--project", str(env.project.id)]
        done = subprocess.run(
            [sys.executable, "-m", "server", "worker", *args, "--once", "--data-dir", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        log = done.stdout + done.stderr
        assert "pulled 45 new rows" in log
        assert "reported the model as version 1" in log
        assert "scored 15 open items with model v1; 15 priorities changed" in log
        assert len(await models(session)) == 1

    async def test_worker_once_with_nobody_listening_fails_with_the_reason(self, tmp_path) -> None:
        args = ["--url", f"http://127.0.0.1:{_free_port()}", "--token", "t", "--project", "p", "--once"]
        done = subprocess.run(
            [sys.executable, "-m", "server", "worker", *args, "--data-dir", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "COLUMNS": "200", "ASSAY_WORKER_RETRIES": "1"},
        )
        assert done.returncode == 1
        assert "Gave up after 2 attempts: ConnectError" in done.stdout + done.stderr


class TestRevisions:
    async def test_the_worker_replaces_revised_judgments_and_trains_on_the_latest(
        self, app, client, session, tmp_path
    ) -> None:
        env = await setup(session, n=40, allow_tie=True)
        await rate(client, env, 30)
        first = await worker(app, env, tmp_path).cycle()
        assert (first.pulled, first.trained) == (30, True)
        judgments = list(await session.scalars(select(Judgment).order_by(Judgment.seq)))
        texts = {c.id: c.text for c in await session.scalars(select(Candidate))}
        # The rater takes back five verdicts: three flipped to the bad answer, two become ties.
        for judgment, body in zip(judgments, [*["flip"] * 3, *["tie"] * 2], strict=False):
            other = await session.scalar(
                select(Candidate.id).where(Candidate.item_id == judgment.item_id, Candidate.id != judgment.choice_id)
            )
            change = {"choice": str(other)} if body == "flip" else {"tie": True}
            response = await client.patch(f"/api/v1/judgments/{judgment.id}", json=change, headers=bearer(env.rater))
            assert response.status_code == 200, response.text
        second = await worker(app, env, tmp_path).cycle()
        assert (second.pulled, second.trained) == (5, True)  # three new rows, two deleted markers
        store = Store(tmp_path)
        rows = list(store.rows(store.load(server="http://testserver", project_id=str(env.project.id))))
        session.expunge_all()
        latest = {str(j.id): j for j in await session.scalars(select(Judgment))}
        assert {r["judgment_id"]: (r["revision"], r["chosen"]) for r in rows} == {
            key: (j.revision, texts[j.choice_id]) for key, j in latest.items() if j.choice_id is not None
        }
        assert len(rows) == 28
        v1, v2 = await models(session)
        assert (v1.metrics["n_judgments"], v2.metrics["n_judgments"]) == (30, 28)
