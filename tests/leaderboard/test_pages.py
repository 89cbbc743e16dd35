"""The leaderboard page over plain HTTP (parsed), and the interval chart's geometry."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Role
from server.web.charts import heat_style, interval_chart, range_ticks
from tests.factories import create_project, create_user, import_items
from tests.leaderboard.battles import item, judge_all
from tests.leaderboard.test_api import ITEMS, VERDICTS
from tests.web.admin import login_as
from tests.web.html import parse


class TestPage:
    async def test_ratings_chart_and_head_to_head(self, client, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,), allow_tie=True, allow_both_bad=True)
        await import_items(session, project, admin, ITEMS)
        await judge_all(session, project, rater, VERDICTS)
        api = await client.get(f"/api/v1/projects/{project.id}/leaderboard")
        order = [r["model"] for r in api.json()]

        response = await client.get(f"/admin/projects/{project.id}/leaderboard")
        assert response.status_code == 200
        page = parse(response.text)
        rows = page.by_id("leaderboard-table").find("tbody").find_all("tr")
        assert [r.find("th").text for r in rows] == order
        assert [r.find_all("td")[3].text for r in rows] == [f"{api.json()[i]['battles']:,}" for i in range(3)]
        assert "11 battles between 3 models." in page.by_id("leaderboard-summary").text
        assert len(page.find_all("g", class_="chart-interval")) == 3
        matrix = page.by_id("win-rate-matrix")
        assert [th.text for th in matrix.find("thead").find_all("th")[1:]] == order
        first_row = matrix.find("tbody").find("tr")
        assert first_row.find_all("td")[0].text == "—"  # a model against itself
        assert len(matrix.find_all("td", class_="heat-cell")) == 6

    async def test_a_project_without_model_labels_says_why(self, client, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        project = await create_project(session, admin)
        await import_items(session, project, admin, [item("p1", None, None)])
        page = parse((await client.get(f"/admin/projects/{project.id}/leaderboard")).text)
        assert page.by_id("leaderboard-empty").find("p").text == (
            "No response in this project carries a model label, so there are no models to rank. "
            'Import responses with a "model" field (for example "model": "gpt-4o") to get a leaderboard.'
        )
        assert page.find_all("table") == []

    async def test_the_overview_links_to_it(self, client, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        project = await create_project(session, admin)
        page = parse((await client.get(f"/admin/projects/{project.id}")).text)
        tabs = page.find("nav", class_="tabs").find_all("a")
        assert f"/admin/projects/{project.id}/leaderboard" in [a["href"] for a in tabs]

    async def test_a_rater_gets_the_refusal_page(self, client, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        await login_as(client, session, Role.rater)
        response = await client.get(f"/admin/projects/{project.id}/leaderboard")
        assert response.status_code == 403
        assert "This page is for admins." in parse(response.text).find("main").text


class TestIntervalChart:
    def test_rows_on_one_shared_axis(self) -> None:
        chart = interval_chart(
            [("a", 1100.0, 1050.0, 1150.0), ("b", 900.0, 860.0, 960.0)], id="t", title="T", reference=(1000.0, "mean")
        )
        a, b = chart.intervals
        assert [t.label for t in chart.value_ticks] == ["800", "900", "1,000", "1,100", "1,200"]
        assert (chart.value_ticks[0].position, chart.value_ticks[-1].position) == (chart.left, chart.right)
        assert a.low_x < a.value_x < a.high_x
        assert b.high_x < a.value_x
        assert chart.reference_x == pytest.approx((chart.left + chart.right) / 2)
        assert a.value_text == "1,100 (95% interval 1,050 to 1,150)"
        assert chart.desc == "a: 1,100 (95% interval 1,050 to 1,150); b: 900 (95% interval 860 to 960)"
        assert a.y < b.y

    def test_long_names_are_cut(self) -> None:
        chart = interval_chart([("x" * 40, 1000.0, 990.0, 1010.0)], id="t", title="T")
        assert chart.intervals[0].label == "x" * 29 + "…"

    def test_no_rows(self) -> None:
        assert interval_chart([], id="t", title="T").empty

    def test_range_ticks(self) -> None:
        assert range_ticks(812.0, 1187.0) == [800.0, 900.0, 1000.0, 1100.0, 1200.0]
        assert range_ticks(1000.0, 1000.0) == [999.0, 1000.0, 1001.0]


class TestHeat:
    def test_even_is_pale_and_extremes_are_strong(self) -> None:
        assert heat_style(0.5) == "background-color: hsl(212 75% 97%); color: #111;"
        assert heat_style(1.0) == "background-color: hsl(212 75% 62%); color: #111;"
        assert heat_style(0.0) == "background-color: hsl(28 75% 62%); color: #111;"
        assert heat_style(None) == ""
