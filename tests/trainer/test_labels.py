"""`assay worker --labels judgments|majority|weighted`: what the worker pulls and trains on, and says so."""

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from server.cli import app as cli
from server.models import Export
from server.trainer.worker import Worker
from tests.trainer.test_worker import models, rate, setup, worker


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
        [export] = list(await session.scalars(select(Export)))
        assert filters.items() <= export.filters.items()
        assert "aggregation" not in export.filters or labels == "weighted"

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
