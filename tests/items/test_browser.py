"""The data browser over HTTP: filters (batch, status, rater, verdict, rationale, skipped, words),
keyset pages, one item with every judgment and skip, one rater's judgments, refusals in words."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.items.filters import PAGE_SIZE
from server.items.verdicts import Shown, describe
from server.labeling import revisions
from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Project, Role, User
from server.projects import service as projects
from tests.factories import create_project, create_user, import_items, native_items
from tests.web.admin import htmx, login_as
from tests.web.html import parse


async def _judge(session: AsyncSession, project: Project, rater: User, **verdict: object) -> None:
    """Lease the rater's next item and send a verdict: `first=True` prefers the first shown candidate."""
    leased = await labeling.next_assignment(session, project=project, rater=rater)
    assert leased is not None
    if verdict.pop("first", False):
        verdict["choice"] = leased.candidates[0].id
    await labeling.submit(
        session, assignment_id=leased.assignment.id, rater=rater, data=JudgmentCreate.model_validate(verdict)
    )
    await session.commit()


async def _skip(session: AsyncSession, project: Project, rater: User, reason: str | None) -> None:
    leased = await labeling.next_assignment(session, project=project, rater=rater)
    assert leased is not None
    await labeling.skip(session, assignment_id=leased.assignment.id, rater=rater, reason=reason)
    await session.commit()


def _ids(html: str) -> list[str]:
    """The row headers of the page's list: the rater page's judgments, or the first table."""
    tables = parse(html).find_all("table", id="judgments") or parse(html).find_all("table")
    return [row.find("th").text for row in tables[0].find("tbody").find_all("tr")] if tables else []


@pytest.fixture
async def world(client: httpx.AsyncClient, session: AsyncSession) -> tuple[Project, User, User]:
    admin, _ = await login_as(client, session)
    rater = await create_user(session, role=Role.rater)
    project = await create_project(session, admin, members=(rater,), allow_tie=True, allow_both_bad=True)
    records = native_items(4)
    records[1]["prompt"] = "How do I bake sourdough bread?"
    records[2]["responses"][1]["text"] = "Knead the dough <b>gently</b>, then bake."
    await import_items(session, project, admin, records)
    return project, admin, rater


class TestBrowse:
    async def test_filters(self, client: httpx.AsyncClient, session: AsyncSession, world) -> None:  # type: ignore[no-untyped-def]
        project, _, rater = world
        await _judge(session, project, rater, first=True, rationale="clearer")  # item-0
        await _judge(session, project, rater, tie=True)  # item-1
        await _judge(session, project, rater, both_bad=True)  # item-2
        await _skip(session, project, rater, "I cannot read this")  # item-3
        url = f"/admin/projects/{project.id}/items"
        assert _ids((await client.get(url)).text) == ["item-0", "item-1", "item-2", "item-3"]
        cases = {
            "verdict=tie": ["item-1"],
            "verdict=both_bad": ["item-2"],
            "verdict=preference": ["item-0"],
            "rationale=1": ["item-0"],
            "skipped=1": ["item-3"],
            f"rater={rater.id}": ["item-0", "item-1", "item-2"],
            f"rater={rater.id}&skipped=1": ["item-3"],
            "status=complete": ["item-0", "item-1", "item-2"],
            "status=unjudged": ["item-3"],
            "q=sourdough": ["item-1"],
            "q=kneading": ["item-2"],  # stemmed, and found in a response
            "q=bread -sourdough": [],
            "q=gently&verdict=both_bad": ["item-2"],
            "batch=&status=&q=": ["item-0", "item-1", "item-2", "item-3"],
        }
        for query, expected in cases.items():
            assert _ids((await client.get(f"{url}?{query}")).text) == expected, query

    async def test_keyset_pages(self, client: httpx.AsyncClient, session: AsyncSession, world) -> None:  # type: ignore[no-untyped-def]
        project, admin, _ = world
        await import_items(session, project, admin, native_items(PAGE_SIZE + 3, start=10))
        url = f"/admin/projects/{project.id}/items"
        first = parse((await client.get(url)).text)
        assert len(first.find("tbody").find_all("tr")) == PAGE_SIZE
        link = first.find("a", rel="next")
        second = (await client.get(url + link["href"])).text
        assert _ids(second) == [f"item-{i}" for i in range(10 + PAGE_SIZE - 4, 10 + PAGE_SIZE + 3)]
        assert parse(second).find_all("a", rel="next") == []

    async def test_htmx_gets_the_results_only(self, client: httpx.AsyncClient, world) -> None:  # type: ignore[no-untyped-def]
        project, _, _ = world
        response = await client.get(f"/admin/projects/{project.id}/items?q=sourdough", headers=htmx("results"))
        assert "<form" not in response.text
        assert _ids(response.text) == ["item-1"]

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("status=done", "status must be one of unjudged, partial, complete, paused (got 'done')."),
            ("verdict=x", "verdict must be one of preference, tie, both_bad, ranking (got 'x')."),
            ("batch=nope", "The batch must be chosen from the list (got 'nope')."),
            ("after=-1", "after must be the position of an item, as in the link to the next page."),
            ("skipped=maybe", "skipped must be 1 or empty (got 'maybe')."),
            ("q=" + "w" * 201, "The search is 201 characters long; search for at most 200 characters."),
        ],
    )
    async def test_bad_filters_are_refused_in_words(
        self,
        client: httpx.AsyncClient,
        world,
        query: str,
        message: str,  # type: ignore[no-untyped-def]
    ) -> None:
        project, _, _ = world
        response = await client.get(f"/admin/projects/{project.id}/items?{query}")
        assert response.status_code == 422
        assert message in parse(response.text).find("main").text

    async def test_search_syntax_never_fails(self, client: httpx.AsyncClient, world) -> None:  # type: ignore[no-untyped-def]
        project, _, _ = world
        for q in ["&|!(", '"unclosed', "a:*", "-", "'; DROP TABLE items; --"]:
            response = await client.get(f"/admin/projects/{project.id}/items", params={"q": q})
            assert response.status_code == 200, q


class TestItemPage:
    async def test_every_judgment_and_skip(self, client: httpx.AsyncClient, session: AsyncSession, world) -> None:  # type: ignore[no-untyped-def]
        project, admin, rater = world
        other = await create_user(session, role=Role.rater, email="second@example.com")
        await projects.add_member(session, project, other.id, actor=admin)
        leased = await labeling.next_assignment(session, project=project, rater=other)
        assert leased is not None
        assert leased.item.external_id == "item-0"
        await labeling.skip(session, assignment_id=leased.assignment.id, rater=other, reason="too long")
        await session.commit()
        await _judge(session, project, rater, first=True, rationale="A is <i>right</i>")
        item_id = leased.item.id
        page = parse((await client.get(f"/admin/items/{item_id}")).text)
        titles = [s.find("h3").text for s in page.find_all("section", class_="candidate")]
        assert titles == ["Response #1 model-0", "Response #2 model-1"]
        row = page.find(id="judgments").find("tbody").find("tr")
        cells = {td["data-label"]: td.text for td in row.iter() if td.get("data-label")}
        assert cells["Rater"] == rater.email
        assert cells["Rationale"] == "A is <i>right</i>"  # text, not markup
        assert cells["Verdict"] in ("#1 preferred (shown as A)", "#2 preferred (shown as A)")
        assert cells["Shown as"] in ("A = #1, B = #2", "A = #2, B = #1")
        assert "too long" in page.find(class_="skip-list").text

    async def test_a_judgment_with_its_revision_history(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        world,  # type: ignore[no-untyped-def]
    ) -> None:
        project, _, rater = world
        leased = await labeling.next_assignment(session, project=project, rater=rater)
        assert leased is not None
        first, second = leased.candidates  # in the order shown: A, B
        submitted = await labeling.submit(
            session,
            assignment_id=leased.assignment.id,
            rater=rater,
            data=JudgmentCreate(choice=first.id, rationale="A reads better"),
        )
        await session.commit()
        for verdict in (JudgmentCreate(choice=second.id, rationale="B is right"), JudgmentCreate(tie=True)):
            await revisions.revise(session, judgment_id=submitted.judgment.id, rater=rater, data=verdict)
            await session.commit()
        page = parse((await client.get(f"/admin/items/{leased.item.id}")).text)
        cell = page.find(id="judgments").find("tbody").find("tr").find("td", data_label="Verdict")
        assert cell.text.startswith("Tie")
        history = cell.find("details", class_="revisions")
        assert history.find("summary").text == "Revision 3: 2 earlier verdicts"
        entries = history.find_all("li")
        assert [li["value"] for li in entries] == ["1", "2"]
        a, b = (f"#{c.position + 1} preferred" for c in (first, second))
        assert entries[0].find("strong").text.startswith(a)
        assert entries[1].find("strong").text.startswith(b)
        assert [li.find("span", class_="rationale").text for li in entries] == ["“A reads better”", "“B is right”"]

    async def test_unknown_item(self, client: httpx.AsyncClient, world) -> None:  # type: ignore[no-untyped-def]
        response = await client.get("/admin/items/00000000-0000-0000-0000-000000000000")
        assert response.status_code == 404
        assert "No item with id 00000000-0000-0000-0000-000000000000." in response.text


class TestRaterPage:
    async def test_newest_first_with_counts(self, client: httpx.AsyncClient, session: AsyncSession, world) -> None:  # type: ignore[no-untyped-def]
        project, _, rater = world
        await _judge(session, project, rater, first=True)
        await _judge(session, project, rater, tie=True)
        await _skip(session, project, rater, None)
        html = (await client.get(f"/admin/projects/{project.id}/raters/{rater.id}")).text
        page = parse(html)
        assert _ids(html) == ["item-1", "item-0"]
        assert "2 judgments and 1 skip in this project" in page.find(class_="item-head").text

    async def test_bad_cursor(self, client: httpx.AsyncClient, world) -> None:  # type: ignore[no-untyped-def]
        project, _, rater = world
        response = await client.get(f"/admin/projects/{project.id}/raters/{rater.id}?before=x")
        assert response.status_code == 422
        assert "before must be the position of a judgment, as in the link to older judgments." in response.text


def test_verdict_words() -> None:
    assert describe(Shown(order=[2, 1], choice=2)).verdict == "#2 preferred (shown as A)"
    assert describe(Shown(order=[2, 1], choice=2)).shown == "A = #2, B = #1"
    assert describe(Shown(order=[1, 2], tie=True)).verdict == "Tie"
    assert describe(Shown(order=[3, 1, 2], ranking=[1, 3, 2])).verdict == "#1 > #3 > #2 (as shown: B > A > C)"
