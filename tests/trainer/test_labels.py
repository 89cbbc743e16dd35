"""`assay worker --labels judgments|majority|weighted`: what the worker pulls and trains on, and says so."""

import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from server.cli import app as cli
from server.client import Unreachable
from server.models import Export
from server.trainer.model import aggregate, is_validation
from server.trainer.store import Store
from server.trainer.worker import Worker
from tests.trainer.test_worker import Env, Flaky, models, rate, setup, worker


class TestLabels:
    @pytest.mark.parametrize(
        ("labels", "filters"),
        [
            ("judgments", {"granularity": "judgment"}),
            ("majority", {"granularity": "item"}),
            ("weighted", {"granularity": "item", "aggregation": "weighted"}),
        ],
    )
    async def test_the_worker_pulls_trains_and_reports_its_labels(
        self, app, client, session, tmp_path, labels: str, filters: dict[str, str]
    ) -> None:
        env = await setup(session)
        await rate(client, env, 45)
        work = worker(app, env, tmp_path)
        work.labels = labels
        result = await work.cycle()
        assert result.pulled == 45
        assert result.trained
        [model] = await models(session)
        assert model.metrics["labels"] == labels
        assert model.metrics["accuracy"] > 0.5
        export, *compared = list(await session.scalars(select(Export).order_by(Export.created_at)))
        assert filters.items() <= export.filters.items()
        assert "aggregation" not in export.filters or labels == "weighted"
        # Only weighted labels are compared (with majority labels: a second export, the same cycle).
        assert ("compare" in model.metrics) == (labels == "weighted") == bool(compared)
        assert (tmp_path / "compare-majority").exists() == (labels == "weighted")

    async def test_weighted_rows_replace_their_earlier_revision(self, app, client, session, tmp_path) -> None:
        """Item rows are kept per item_id at their highest aggregate revision (store.latest)."""
        env = await setup(session)
        await rate(client, env, 20)
        work = worker(app, env, tmp_path)
        work.labels = "weighted"
        await work.cycle()
        await rate(client, env, 5)
        await work.cycle()
        state = work.store.load(server=work.server, project_id=work.project_id)
        rows = list(work.store.rows(state))
        assert len(rows) == 25
        assert len({r["item_id"] for r in rows}) == 25
        assert all(0.5 < r["confidence"] <= 1.0 for r in rows)

    async def test_a_data_directory_keeps_its_labels(self, app, client, session, tmp_path) -> None:
        env = await setup(session)
        await rate(client, env, 12)
        await worker(app, env, tmp_path).cycle()
        other = worker(app, env, tmp_path)
        other.labels = "weighted"
        with pytest.raises(RuntimeError) as refused:
            await other.cycle()
        assert str(refused.value) == (
            f"{tmp_path} holds rows pulled with --labels judgments; run with --labels judgments, "
            "or use another --data-dir for --labels weighted."
        )


def test_unknown_labels_are_refused_by_the_worker() -> None:
    with pytest.raises(ValueError, match="labels must be one of") as refused:
        Worker(None, None, server="", project_id="", featurizer=None, labels="votes")  # type: ignore[arg-type]
    assert str(refused.value) == "labels must be one of judgments, majority, weighted, not 'votes'."


def test_unknown_labels_are_refused_by_the_command(tmp_path) -> None:
    result = CliRunner().invoke(
        cli,
        ["worker", "--url", "http://127.0.0.1:9", "--token", "t", "--project", "p", "--labels", "votes"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert "--labels must be judgments, majority or weighted, not 'votes'." in result.output


def weighted(app: Any, env: Env, data_dir: Any, **options: Any) -> Worker:
    work = worker(app, env, data_dir, **options)
    work.labels = "weighted"
    return work


def is_majority_pull(request: httpx.Request) -> bool:
    return (
        request.url.path.endswith("/export")
        and request.url.params.get("granularity") == "item"
        and ("aggregation" not in request.url.params)
    )


class RatesBeforeTheMajorityPull(httpx.AsyncBaseTransport):
    """The app, except that the rater completes `count` more items between the weighted and the majority pull."""

    def __init__(self, app: Any, client: httpx.AsyncClient, env: Env, count: int) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.client, self.env, self.count = client, env, count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.count and is_majority_pull(request):
            await rate(self.client, self.env, self.count)
            self.count = 0
        return await self.inner.handle_async_request(request)


def held_out_keys(data_dir: Any, project_id: str) -> set[str]:
    store = Store(data_dir)
    pairs, _ = aggregate(store.rows(store.load(server="http://testserver", project_id=project_id)))
    return {p.key for p in pairs if p.label is not None and is_validation(p.prompt)}


class TestComparedWithMajority:
    """`--labels weighted` also trains on majority labels of the same items and reports both held-out figures."""

    async def test_a_cycle_reports_both_figures_on_the_same_held_out_prompts(
        self, app, client, session, tmp_path, caplog
    ) -> None:
        env = await setup(session)
        await rate(client, env, 45)
        # Five items are completed between the two pulls: only the majority stream has them.
        transport = RatesBeforeTheMajorityPull(app, client, env, 5)
        with caplog.at_level(logging.INFO, logger="assay.worker"):
            result = await weighted(app, env, tmp_path, transport=transport).cycle()
        assert (result.pulled, result.pulled_compared, result.trained) == (45, 50, True)
        [model] = await models(session)
        m, compare = model.metrics, model.metrics["compare"]
        assert m["labels"] == "weighted"
        assert m["n_pairs"] == 45
        held_out = held_out_keys(tmp_path, str(env.project.id))
        assert held_out <= held_out_keys(tmp_path / "compare-majority", str(env.project.id))
        assert (compare["n_train"], compare["n_validation"]) == (45 - len(held_out), len(held_out))
        assert compare["labels_agree"] == 1.0
        assert compare["weighted"]["accuracy"] == m["accuracy"]  # the same pairs, the same labels
        assert compare["majority"]["accuracy"] >= 0.8
        assert set(compare["majority"]) == set(compare["weighted"]) == {"accuracy", "log_loss"}
        [line] = [r.getMessage() for r in caplog.records if "(weighted) vs" in r.getMessage()]
        assert line == (
            f"held-out accuracy {compare['weighted']['accuracy']:.3f} (weighted) vs "
            f"{compare['majority']['accuracy']:.3f} (majority), same {len(held_out)} held-out pairs "
            f"({45 - len(held_out)} trained on; labels agree on 100.0%)"
        )
        # The next cycle gets the five items in the weighted stream too, and compares them.
        again = await weighted(app, env, tmp_path).cycle()
        assert (again.pulled, again.pulled_compared, again.trained) == (5, 0, True)
        _, v2 = await models(session)
        assert v2.metrics["compare"]["n_train"] + v2.metrics["compare"]["n_validation"] == 50

    async def test_a_restart_after_the_weighted_pull_resumes_without_double_counting(
        self, app, client, session, tmp_path
    ) -> None:
        env = await setup(session)
        await rate(client, env, 45)
        down = Flaky(app, is_majority_pull)
        with pytest.raises(Unreachable):
            await weighted(app, env, tmp_path, transport=down, retries=0).cycle()
        state = json.loads((tmp_path / "state.json").read_text())
        assert ([s["rows"] for s in state["segments"]], state["trained"]) == ([45], None)
        assert not (tmp_path / "compare-majority" / "state.json").exists()
        result = await weighted(app, env, tmp_path).cycle()
        assert (result.pulled, result.pulled_compared, result.trained, result.version) == (0, 45, True, 1)
        [model] = await models(session)
        assert model.metrics["n_pairs"] == 45
        assert model.metrics["compare"]["n_train"] + model.metrics["compare"]["n_validation"] == 45
        compared = json.loads((tmp_path / "compare-majority" / "state.json").read_text())
        assert (compared["labels"], [s["rows"] for s in compared["segments"]]) == ("majority", [45])
        # Nothing new: neither stream pulls again, nothing is trained twice.
        again = await weighted(app, env, tmp_path).cycle()
        assert (again.pulled, again.pulled_compared, again.trained, again.version) == (0, 0, False, 1)
