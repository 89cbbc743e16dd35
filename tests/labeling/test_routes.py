"""The rater's pages over HTTP: my projects, the labeling page, submit and skip fragments."""

import re
import uuid
from dataclasses import dataclass
from html import unescape
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import pages
from server.labeling.rules import RATIONALE_REQUIRED
from server.models import Assignment, Item, Judgment, Project, Role, User
from tests.factories import PASSWORD, create_project, create_user, import_items, native_items
from tests.web.conftest import csrf_of, page_login
from tests.web.test_auth_pages import Text

SLOT = re.compile(r'<section class="slot item" id="a-([0-9a-f-]+)"[^>]*?(hidden)?>')
CANDIDATE_ORDER = re.compile(r'name="verdict" value="c:([0-9a-f-]+):')


class Rater:
    """A browser-like client of one rater: logged in, with the page's CSRF token for htmx calls."""

    def __init__(self, client: httpx.AsyncClient, user: User) -> None:
        self.client, self.user, self.csrf = client, user, ""

    async def open(self, project: Project) -> "Opened":
        """The page (GET: leases nothing), then its queue, as the page's script asks for it (POST)."""
        response = await self.client.get(f"/projects/{project.id}/label")
        if response.status_code != 200:
            return Opened(response.status_code, response.text)
        self.csrf = csrf_of(response.text)
        queue = await self.post(f"/projects/{project.id}/label/queue")
        return Opened(queue.status_code, response.text + queue.text)

    async def post(self, path: str, **data: Any) -> httpx.Response:
        headers = {"HX-Request": "true", "HX-Target": "queue", "X-CSRF-Token": self.csrf}
        return await self.client.post(path, data=data, headers=headers)


@dataclass(frozen=True)
class Opened:
    status_code: int
    text: str


def slots(html: str) -> list[tuple[str, bool]]:
    """(assignment id, hidden) of each item section, in page order."""
    return [(m.group(1), m.group(2) is not None) for m in SLOT.finditer(html)]


@pytest.fixture
def make_rater(client: httpx.AsyncClient, session: AsyncSession):  # type: ignore[no-untyped-def]
    async def build(n_items: int = 4, candidates: int = 2, **settings: Any) -> tuple[Rater, Project, User]:
        admin = await create_user(session, role=Role.admin)
        user = await create_user(session)
        project = await create_project(session, admin, members=(user,), **settings)
        if n_items:
            await import_items(session, project, admin, native_items(n_items, candidates=candidates))
        await page_login(client, user.email, PASSWORD)
        return Rater(client, user), project, admin

    return build


async def leases(session: AsyncSession, user: User) -> list[Assignment]:
    rows = await session.scalars(
        select(Assignment).where(Assignment.rater_id == user.id, Assignment.status == "leased")
    )
    return list(rows)


class TestMyProjects:
    async def test_lists_projects_with_counts(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater(n_items=3, overlap=1)
        page = await rater.open(project)
        first = slots(page.text)[0][0]
        verdict = CANDIDATE_ORDER.search(page.text)
        assert verdict is not None
        await rater.post(f"/assignments/{first}/judge", verdict=f"c:{verdict.group(1)}:")
        home = await rater.client.get("/")
        text = Text.of(home.text)
        assert "Test project 1 judged by you today 2 left in the project" in text
        assert f'href="/projects/{project.id}/label"' in home.text

    async def test_no_projects(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        user = await create_user(session)
        await page_login(client, user.email, PASSWORD)
        text = Text.of((await client.get("/")).text)
        assert "No project is shared with you yet." in text


class TestLabelPage:
    async def test_current_and_next_are_leased(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater()
        response = await rater.open(project)
        assert response.status_code == 200
        shown = slots(response.text)
        assert [hidden for _, hidden in shown] == [True, True]  # the script shows the first
        held = await leases(session, rater.user)
        assert sorted(str(a.id) for a in held) == sorted(a for a, _ in shown)

    async def test_opening_the_page_leases_nothing(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater()
        response = await rater.client.get(f"/projects/{project.id}/label")
        assert response.status_code == 200
        assert slots(response.text) == []
        assert await leases(session, rater.user) == []
        assert f'hx-post="/projects/{project.id}/label/queue" hx-trigger="load"' in response.text
        assert "This page needs JavaScript" in response.text

    async def test_queue_without_htmx_goes_back_to_the_page(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater()
        await rater.open(project)
        response = await rater.client.post(f"/projects/{project.id}/label/queue", headers={"X-CSRF-Token": rater.csrf})
        assert response.status_code == 303
        assert response.headers["location"] == f"/projects/{project.id}/label"

    async def test_queue_needs_the_csrf_token(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater()
        await rater.client.get(f"/projects/{project.id}/label")
        response = await rater.client.post(f"/projects/{project.id}/label/queue", headers={"HX-Request": "true"})
        assert response.status_code == 403
        assert await leases(session, rater.user) == []

    async def test_reload_shows_the_same_two_items(self, make_rater) -> None:
        rater, project, _ = await make_rater()
        first = slots((await rater.open(project)).text)
        again = slots((await rater.open(project)).text)
        assert again == first

    async def test_candidates_in_stored_order_labelled(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater(n_items=1, candidates=2)
        response = await rater.open(project)
        ((assignment_id, _),) = slots(response.text)
        stored = await session.get(Assignment, uuid.UUID(assignment_id))
        assert stored is not None
        shown = CANDIDATE_ORDER.findall(response.text)
        assert shown == [str(c) for c in stored.shown_order]
        assert "A is better" in response.text
        assert "B is better" in response.text

    async def test_instructions_are_markdown_with_html_escaped(self, make_rater) -> None:
        rater, project, _ = await make_rater(instructions="Be **kind**. <script>alert(1)</script>")
        response = await rater.open(project)
        assert "<strong>kind</strong>" in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text

    async def test_model_output_is_text(self, make_rater, session: AsyncSession) -> None:
        rater, project, admin = await make_rater(n_items=0)
        evil = "<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) **bold**"
        record = {"id": "x", "prompt": "Say hi", "responses": [{"text": evil}, {"text": "hi"}]}
        await import_items(session, project, admin, [record])
        response = await rater.open(project)
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;" in response.text
        assert "[x](javascript:alert(1)) **bold**" in response.text
        assert "<img" not in response.text

    async def test_nothing_left(self, make_rater) -> None:
        rater, project, _ = await make_rater(n_items=0)
        response = await rater.open(project)
        text = Text.of(response.text)
        assert "All done for now Nothing is left for you to judge in Test project." in text

    async def test_paused_project(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater()
        await session.execute(update(Project).where(Project.id == project.id).values(is_active=False))
        await session.commit()
        response = await rater.open(project)
        assert response.status_code == 200
        assert "Labeling stopped Project 'Test project' is paused; labeling resumes when an admin restarts it." in (
            Text.of(response.text)
        )

    async def test_project_not_shared(self, client: httpx.AsyncClient, session: AsyncSession, make_rater) -> None:
        _, project, _ = await make_rater()
        outsider = await create_user(session)
        await page_login(client, outsider.email, PASSWORD)
        response = await client.get(f"/projects/{project.id}/label")
        assert response.status_code == 404
        assert f"No project with id {project.id} is shared with you." in Text.of(response.text)

    async def test_without_session_goes_to_login(self, client: httpx.AsyncClient) -> None:
        project_id = uuid.uuid4()
        response = await client.get(f"/projects/{project_id}/label")
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next=%2Fprojects%2F{project_id}%2Flabel"


class TestJudge:
    async def test_stores_verdict_and_returns_the_item_after_next(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater(scale="8-point", rationale="optional")
        page = await rater.open(project)
        (current, _), (ahead, _) = slots(page.text)
        stored = await session.get(Assignment, uuid.UUID(current))
        assert stored is not None
        b = stored.shown_order[1]
        response = await rater.post(
            f"/assignments/{current}/judge", verdict=f"c:{b}:3", rationale=" clearer ", active_ms="4200", ahead=ahead
        )
        assert response.status_code == 200
        ((new, hidden),) = slots(response.text)
        assert hidden
        assert new not in (current, ahead)
        judgment = await session.scalar(select(Judgment).where(Judgment.assignment_id == uuid.UUID(current)))
        assert judgment is not None
        assert (judgment.choice_id, judgment.strength, judgment.rationale, judgment.active_ms) == (
            b,
            3,
            "clearer",
            4200,
        )
        assert len(await leases(session, rater.user)) == 2  # ahead + the new one

    async def test_double_submit_stores_one(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater()
        page = await rater.open(project)
        (current, _), (ahead, _) = slots(page.text)
        choice = CANDIDATE_ORDER.search(page.text)
        assert choice is not None
        for _ in range(2):
            response = await rater.post(f"/assignments/{current}/judge", verdict=f"c:{choice.group(1)}:", ahead=ahead)
            assert response.status_code == 200
        count = await session.scalar(select(func.count()).select_from(Judgment))
        assert count == 1

    async def test_no_verdict_is_refused_inline(self, make_rater) -> None:
        rater, project, _ = await make_rater()
        (current, _), _ = slots((await rater.open(project)).text)
        response = await rater.post(f"/assignments/{current}/judge", rationale="typed")
        assert response.status_code == 422
        assert response.headers["HX-Retarget"] == f"#error-{current}"
        assert unescape(response.text) == pages.NO_VERDICT

    async def test_required_rationale(self, make_rater) -> None:
        rater, project, _ = await make_rater(rationale="required")
        page = await rater.open(project)
        (current, _), _ = slots(page.text)
        choice = CANDIDATE_ORDER.search(page.text)
        assert choice is not None
        response = await rater.post(f"/assignments/{current}/judge", verdict=f"c:{choice.group(1)}:", rationale=" ")
        assert response.status_code == 422
        assert unescape(response.text) == RATIONALE_REQUIRED

    async def test_tie_not_allowed(self, make_rater) -> None:
        rater, project, _ = await make_rater(allow_tie=False)
        (current, _), _ = slots((await rater.open(project)).text)
        response = await rater.post(f"/assignments/{current}/judge", verdict="tie")
        assert response.status_code == 422
        assert unescape(response.text) == "This project does not allow ties; pick the better candidate."

    async def test_tampered_verdict(self, make_rater) -> None:
        rater, project, _ = await make_rater()
        (current, _), _ = slots((await rater.open(project)).text)
        response = await rater.post(f"/assignments/{current}/judge", verdict="c:not-a-uuid:")
        assert response.status_code == 422
        assert unescape(response.text) == pages.BAD_VERDICT

    async def test_overlong_rationale(self, make_rater) -> None:
        rater, project, _ = await make_rater()
        page = await rater.open(project)
        (current, _), _ = slots(page.text)
        choice = CANDIDATE_ORDER.search(page.text)
        assert choice is not None
        response = await rater.post(
            f"/assignments/{current}/judge", verdict=f"c:{choice.group(1)}:", rationale="x" * 20_001
        )
        assert response.status_code == 422
        assert unescape(response.text) == pages.RATIONALE_TOO_LONG

    async def test_without_csrf_token_is_refused(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater()
        (current, _), _ = slots((await rater.open(project)).text)
        rater.csrf = "stale"
        response = await rater.post(f"/assignments/{current}/judge", verdict="tie")
        assert response.status_code == 403
        assert response.headers["HX-Retarget"] == "#flash"
        assert "The form&#39;s security token is missing or stale; reload the page and try again." in response.text
        assert await session.scalar(select(func.count()).select_from(Judgment)) == 0

    async def test_someone_elses_assignment(self, make_rater, client, session: AsyncSession) -> None:
        rater, project, _ = await make_rater()
        (current, _), _ = slots((await rater.open(project)).text)
        other = await create_user(session)
        await page_login(client, other.email, PASSWORD)
        home = await client.get("/")
        stranger = Rater(client, other)
        stranger.csrf = csrf_of(home.text)
        response = await stranger.post(f"/assignments/{current}/judge", verdict="tie")
        assert response.status_code == 404
        assert unescape(response.text) == f"No assignment {current} of yours."

    async def test_late_verdict_on_filled_item_is_kept_as_surplus(
        self, make_rater, client, session: AsyncSession
    ) -> None:
        rater, project, _ = await make_rater(n_items=1, overlap=1)
        page = await rater.open(project)
        ((current, _),) = slots(page.text)
        choice = CANDIDATE_ORDER.search(page.text)
        assert choice is not None
        # The lease runs out, the item goes back to the queue, and another rater fills it.
        await session.execute(
            update(Assignment).where(Assignment.id == uuid.UUID(current)).values(expires_at=func.now())
        )
        await session.execute(update(Item).values(leased=0))
        await session.execute(update(Assignment).values(status="expired"))
        await session.execute(update(Item).values(judged=1, completed_at=func.now()))
        await session.commit()
        response = await rater.post(f"/assignments/{current}/judge", verdict=f"c:{choice.group(1)}:")
        assert response.status_code == 200
        assert pages.SURPLUS in Text.of(response.text)
        assert 'hx-swap-oob="true"' in response.text
        judgment = await session.scalar(select(Judgment))
        assert judgment is not None
        assert judgment.surplus

    async def test_plain_form_post_redirects_back(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater()
        page = await rater.open(project)
        (current, _), _ = slots(page.text)
        choice = CANDIDATE_ORDER.search(page.text)
        assert choice is not None
        response = await rater.client.post(
            f"/assignments/{current}/judge", data={"verdict": f"c:{choice.group(1)}:", "csrf_token": rater.csrf}
        )
        assert response.status_code == 303
        assert response.headers["location"] == f"/projects/{project.id}/label"
        assert await session.scalar(select(func.count()).select_from(Judgment)) == 1

    async def test_ranking(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater(n_items=2, candidates=3, scale="4-point")
        page = await rater.open(project)
        (current, _), (ahead, _) = slots(page.text)
        assert 'data-mode="ranking"' in page.text
        stored = await session.get(Assignment, uuid.UUID(current))
        assert stored is not None
        order = list(reversed(stored.shown_order))
        response = await rater.post(
            f"/assignments/{current}/judge", ranking=",".join(map(str, order)), strength="2", ahead=ahead
        )
        assert response.status_code == 200
        judgment = await session.scalar(select(Judgment))
        assert judgment is not None
        assert (judgment.ranking, judgment.choice_id, judgment.strength) == (order, order[0], 2)

    async def test_last_item_answers_done(self, make_rater) -> None:
        rater, project, _ = await make_rater(n_items=1)
        page = await rater.open(project)
        ((current, _),) = slots(page.text)
        choice = CANDIDATE_ORDER.search(page.text)
        assert choice is not None
        response = await rater.post(f"/assignments/{current}/judge", verdict=f"c:{choice.group(1)}:")
        assert response.status_code == 200
        assert "All done for now" in Text.of(response.text)


class TestSkip:
    async def test_skip_returns_next_and_never_offers_it_again(self, make_rater, session: AsyncSession) -> None:
        rater, project, _ = await make_rater(n_items=3)
        (current, _), (ahead, _) = slots((await rater.open(project)).text)
        response = await rater.post(f"/assignments/{current}/skip", ahead=ahead)
        assert response.status_code == 200
        ((new, _),) = slots(response.text)
        skipped = await session.get(Assignment, uuid.UUID(current))
        assert skipped is not None
        assert skipped.status == "skipped"
        again = slots((await rater.open(project)).text)
        assert current not in [a for a, _ in again]
        assert [a for a, _ in again] == [ahead, new]

    async def test_skip_after_judging_is_refused(self, make_rater) -> None:
        rater, project, _ = await make_rater()
        page = await rater.open(project)
        (current, _), _ = slots(page.text)
        choice = CANDIDATE_ORDER.search(page.text)
        assert choice is not None
        await rater.post(f"/assignments/{current}/judge", verdict=f"c:{choice.group(1)}:")
        response = await rater.post(f"/assignments/{current}/skip")
        assert response.status_code == 409
        assert unescape(response.text) == "You already judged this item; a judged item cannot be skipped."
