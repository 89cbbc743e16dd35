"""The assistance experiment page (/admin/projects/{id}/assistance), checked by parsing the HTML."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.critiques import report
from server.critiques.routes import figure, interval
from server.models import Role
from tests.critiques.test_report import _set_groups, _world
from tests.factories import create_project, create_user
from tests.web.admin import login_as
from tests.web.html import parse


class TestFormatting:
    @pytest.mark.parametrize(
        ("metric", "value", "signed", "text"),
        [
            ("catch_rate", 0.6234, False, "62%"),
            ("catch_rate", 0.21, True, "+21 pts"),
            ("catch_rate", -0.004, True, "0 pts"),
            ("median_seconds", 42.5, False, "42 s"),
            ("median_seconds", -3.25, True, "-3.2 s"),
            ("flaws_per_item", 1 / 6, False, "0.17"),
            ("flaws_per_item", -0.001, True, "0.00"),  # never "-0.00"
            ("median_seconds", -0.04, True, "0.0 s"),
            ("gold_accuracy", None, False, "—"),
        ],
    )
    def test_figure(self, metric: str, value: float | None, signed: bool, text: str) -> None:
        assert figure(metric, value, signed=signed) == text

    def test_interval(self) -> None:
        assert interval("catch_rate", [0.09, 0.33]) == "+9 pts to +33 pts"
        assert interval("catch_rate", None) == "—"


class TestPage:
    async def test_report_in_words_and_table(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        world = await _world(session)
        await login_as(client, session)
        response = await client.get(f"/admin/projects/{world.project.id}/assistance")
        assert response.status_code == 200
        page = parse(response.text)
        assert page.find_all(id="no-experiment") == []
        catch = page.by_id("finding-catch_rate").text
        assert catch.startswith(
            "With critiques, raters caught 67% of planted flaws vs 100% without (difference -33 points"
        )
        assert "Not significant" in catch
        row = [td.text for td in page.by_id("row-catch_rate").find_all("td")]
        assert row[:3] == ["67%", "100%", "-33 pts"]
        assert [td.text for td in page.by_id("row-median_seconds").find_all("td")][:3] == ["30 s", "42 s", "-12 s"]
        assert page.by_id("row-judgments").find_all("td")[0].text == "6 (3)"
        assert "4 judgments made outside the experiment" in page.by_id("report-scope").text
        assert page.by_id("sandwiching").text.startswith("Sandwiching (Bowman et al. 2022)")
        tab = page.find("nav", class_="tabs").find("a", **{"aria-current": "page"})
        assert tab.text == "Assistance"

    async def test_group_split(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        world = await _world(session)
        await _set_groups(session, world, {"R1": "novice", "R2": "novice", "R3": "expert"})
        await login_as(client, session)
        page = parse((await client.get(f"/admin/projects/{world.project.id}/assistance?group=novice")).text)
        options = [o.text for o in page.by_id("f-group").find_all("option")]
        assert options == ["All raters", "Group expert", "Group novice"]
        selected = [o.text for o in page.by_id("f-group").find_all("option") if "selected" in o.attrs]
        assert selected == ["Group novice"]
        assert "Raters of the group novice only." in page.by_id("report-scope").text
        assert page.by_id("row-judgments").find_all("td")[0].text == "4 (2)"  # R1 i0 i1, R2 i1 i2

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("effect=abc", report.EFFECT_REFUSED.format(value="abc")),
            ("effect=2", report.EFFECT_REFUSED.format(value="2")),
            (
                "group=nobody",
                "No member of this project is in the group 'nobody'; it has no rater groups yet (set them "
                "on the Members page).",
            ),
            ("batch=x", "Choose a batch from the list."),
        ],
    )
    async def test_refusals_under_the_form(
        self, client: httpx.AsyncClient, session: AsyncSession, query: str, message: str
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin, assistance="experiment")
        await login_as(client, session)
        response = await client.get(f"/admin/projects/{project.id}/assistance?{query}")
        assert response.status_code == 422
        assert parse(response.text).by_id("f-effect-error").text == message

    async def test_never_says_how_to_start(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        await login_as(client, session)
        page = parse((await client.get(f"/admin/projects/{project.id}/assistance")).text)
        card = page.by_id("no-experiment").text
        assert "shows raters no assistance" in card
        assert "To start one, set Assistance to experiment in Settings" in " ".join(card.split())
        assert page.by_id("report-statement").text.strip() == "No judgments yet: nothing to compare."
