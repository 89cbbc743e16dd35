"""The admin page of reward models: versions with metrics and a chart, the queue with its reasons."""

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Item, RewardModel, Role
from server.rewards.charts import accuracy_chart
from server.rewards.schemas import RewardModelCreate, ScoreCreate
from server.rewards.service import list_models, record_scores, report
from tests.factories import create_project, create_user, import_items, native_items
from tests.web.admin import login_as
from tests.web.html import parse

METRICS = {"log_loss": 0.66, "n_train": 90, "n_validation": 80, "training_seconds": 1.25}


async def setup(session: AsyncSession, admin) -> tuple:  # type: ignore[no-untyped-def]
    trainer = await create_user(session, role=Role.trainer)
    project = await create_project(session, admin, members=(trainer,), active_learning=True)
    await import_items(session, project, admin, native_items(4))
    for version, (n, accuracy) in enumerate([(110, 0.58), (220, 0.61)], start=1):
        data = RewardModelCreate(
            features="hashed-char-ngrams-2-4-2^18",
            cursor_to=f"c{version}",
            metrics={**METRICS, "accuracy": accuracy, "n_pairs": n, "n_judgments": n},
            artefact_sha256="cd" * 32,
        )
        model, _ = await report(session, project=project, trainer=trainer, data=data)
    items = list(await session.scalars(select(Item.id).where(Item.project_id == project.id).order_by(Item.seq)))
    scores = [ScoreCreate(item_id=items[1], p=0.49), ScoreCreate(item_id=items[2], p=0.8)]
    await record_scores(session, project=project, model=model, scores=scores)
    await session.commit()
    return project, items


class TestRewardModelsPage:
    async def test_versions_newest_first_and_the_queue_with_reasons(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, _ = await login_as(client, session)
        project, _ = await setup(session, admin)
        response = await client.get(f"/admin/projects/{project.id}/reward-models")
        assert response.status_code == 200
        page = parse(response.text)
        rows = page.by_id("model-versions").find("tbody").find_all("tr")
        assert [r.find("th").text for r in rows] == ["v2", "v1"]
        assert "0.610" in rows[0].text
        assert "220" in rows[0].text
        assert page.find("svg", class_="chart-reward-accuracy").find("desc").text == (
            "2 model versions. Latest, v2: held-out accuracy 0.610 after 220 pairs."
        )
        queue = page.by_id("queue").find("tbody").find_all("tr")
        assert [r.find("td", class_="reason").text for r in queue] == [
            "uncertain: p=0.49 (model v2)",
            "uncertain: p=0.80 (model v2)",
            "import order",
            "import order",
        ]
        assert page.find("nav", class_="tabs").find("a", **{"aria-current": "page"}).text == "Reward models"

    async def test_stored_metrics_of_any_shape_never_break_the_page(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        """Rows stored before metrics were checked may hold anything: the page shows what it can read."""
        admin, _ = await login_as(client, session)
        project, _ = await setup(session, admin)
        for version, metrics in enumerate(
            [{"accuracy": 0.7, "n_judgments": "lots"}, {"accuracy": "high", "training_seconds": None}, {}], start=3
        ):
            session.add(
                RewardModel(
                    project_id=project.id, version=version, features="f", cursor_to=f"x{version}", metrics=metrics
                )
            )
        await session.commit()
        response = await client.get(f"/admin/projects/{project.id}/reward-models")
        assert response.status_code == 200
        rows = parse(response.text).by_id("model-versions").find("tbody").find_all("tr")
        assert [r.find("th").text for r in rows] == ["v5", "v4", "v3", "v2", "v1"]
        dash = "\N{EN DASH}"
        # v3's n_judgments ("lots") reads as missing
        assert [c.text for c in rows[2].find_all("td")][1:3] == [dash, f"{dash} / {dash}"]
        assert "0.700" in rows[2].text
        assert parse(response.text).find("svg", class_="chart-reward-accuracy").find("desc").text == (
            "3 model versions. Latest, v3: held-out accuracy 0.700 after 0 pairs."
        )

    async def test_raters_are_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project, _ = await setup(session, admin)
        await login_as(client, session, Role.rater)
        response = await client.get(f"/admin/projects/{project.id}/reward-models")
        assert response.status_code == 403


class TestAccuracyChart:
    async def test_points_follow_judgments_and_accuracy(self, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project, _ = await setup(session, admin)
        chart = accuracy_chart(await list_models(session, project))
        first, second = chart.points
        assert first.x < second.x  # more judgments to the right
        assert first.y > second.y  # higher accuracy is higher up (smaller y)
        assert first.label == "v1: accuracy 0.580 after 110 pairs"
        assert [t.label for t in chart.label_ticks] == ["0", "100", "200", "300"]


class TestTooLittleHeldOut:
    async def test_accuracy_on_few_held_out_pairs_is_not_shown(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, _ = await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(trainer,))
        data = RewardModelCreate(
            features="f",
            cursor_to="c1",
            metrics={**METRICS, "accuracy": 0.9, "n_pairs": 60, "n_judgments": 60, "n_validation": 10},
        )
        await report(session, project=project, trainer=trainer, data=data)
        await session.commit()
        page = parse((await client.get(f"/admin/projects/{project.id}/reward-models")).text)
        cell = page.by_id("model-versions").find("td", class_="accuracy")
        assert cell.text == "too little data to judge (10 held-out pairs, under 50)"
        assert "0.900" not in cell.text

    async def test_the_chart_leaves_them_out_and_says_so(self, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(trainer,))
        for cursor, n_validation, accuracy in (("c1", 80, 0.62), ("c2", 10, 0.95), ("c3", 1, 1.0), ("c4", 120, 0.7)):
            metrics = {
                **METRICS,
                "accuracy": accuracy,
                "n_pairs": 100,
                "n_judgments": 100,
                "n_validation": n_validation,
            }
            data = RewardModelCreate(features="f", cursor_to=cursor, metrics=metrics)
            await report(session, project=project, trainer=trainer, data=data)
        await session.commit()
        chart = accuracy_chart(await list_models(session, project))
        assert [p.label.split(":")[0] for p in chart.points] == ["v1", "v4"]
        assert chart.left_out == ("v2 (10 held-out pairs)", "v3 (1 held-out pair)")
        assert chart.desc.endswith(
            "Left out, too little data to judge (under 50 held-out pairs): v2 (10 held-out pairs), "
            "v3 (1 held-out pair)."
        )


class TestComparedWithMajority:
    async def test_the_majority_figure_is_shown_beside_the_accuracy(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, _ = await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(trainer,))
        compare = {"n_train": 300, "n_validation": 80, "labels_agree": 0.9625}
        figures = {"weighted": {"accuracy": 0.6125, "log_loss": 0.66}, "majority": {"accuracy": 0.59, "log_loss": 0.67}}
        few = {"n_train": 300, "n_validation": 12, "labels_agree": 1.0} | figures
        for cursor, extra in (("c1", {}), ("c2", {"compare": compare | figures}), ("c3", {"compare": few})):
            metrics = {**METRICS, "accuracy": 0.6125, "n_pairs": 380, "n_judgments": 380, **extra}
            await report(
                session,
                project=project,
                trainer=trainer,
                data=RewardModelCreate(features="f", cursor_to=cursor, metrics=metrics),
            )
        await session.commit()
        page = parse((await client.get(f"/admin/projects/{project.id}/reward-models")).text)
        cells = [row.find("td", class_="accuracy") for row in page.by_id("model-versions").find("tbody").find_all("tr")]
        texts = [[d.text for d in c.find_all("div", class_="compare")] for c in cells]
        assert texts == [
            ["weighted vs majority: too little data to judge (same 12 held-out pairs; labels agree on 100%)"],
            ["weighted 0.613 majority 0.590 (same 80 held-out pairs; labels agree on 96%)"],
            [],  # trained before the comparison, or on other labels
        ]
        assert "--labels weighted" in page.find("p", class_="hint").text
