"""The rater page over HTTP: the two arms of an experiment, diffed; ratings sent as form fields."""

import re
import uuid
from html import unescape

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import pages
from server.models import Assignment, Critique, CritiqueRating, Judgment, ProjectMember
from tests.critiques.conftest import Setup
from tests.labeling.race import PageRater

SLOT = re.compile(r'<section class="slot item" id="a-([0-9a-f-]+)"')


async def force_next_arm(session: AsyncSession, s: Setup, rater: int, *, assisted: bool) -> None:
    """At ratio 0.5, a rater with one decision made gets the other arm next, for certain."""
    await session.execute(
        update(ProjectMember)
        .where(ProjectMember.project_id == s.project.id, ProjectMember.user_id == s.raters[rater].id)
        .values(assist_leases=1, assist_shown=0 if assisted else 1)
    )
    await session.commit()


def first_slot(html: str) -> str:
    starts = [m.start() for m in SLOT.finditer(html)]
    return html[starts[0] : starts[1] if len(starts) > 1 else len(html)]


async def test_unassisted_arm_carries_no_trace_of_critiques(app, make_setup, session) -> None:
    s = await make_setup(n_items=1, n_raters=2, overlap=2, assistance="experiment")
    await force_next_arm(session, s, 0, assisted=True)
    await force_next_arm(session, s, 1, assisted=False)
    html = {}
    for index, arm in ((0, "assisted"), (1, "unassisted")):
        rater = await PageRater(app).login(s.raters[index].email)
        response = await rater.post(f"/projects/{s.project.id}/label/queue")
        await rater.aclose()
        assert response.status_code == 200
        html[arm] = first_slot(response.text)
    critique = (await session.scalars(select(Critique))).one()
    assert "Paris is in France, not Italy." in html["assisted"]
    assert str(critique.id) in html["assisted"]
    assert 'class="span-mark"' in html["assisted"]
    for trace in ("Paris is in France", str(critique.id), "critic-1", "span-mark", "data-critique=", "cr-", "ch-"):
        assert trace not in html["unassisted"], trace
    # Each rater got the arm forced above, recorded on their assignment.
    shown = {a.rater_id: a.assistance["shown"] for a in (await session.scalars(select(Assignment))).all()}
    assert shown == {s.raters[0].id: True, s.raters[1].id: False}


async def test_ratings_and_a_critique_sent_from_the_page(app, make_setup, session) -> None:
    s = await make_setup(n_items=2, n_raters=1, assistance="always")
    rater = await PageRater(app).login(s.raters[0].email)
    queue = await rater.post(f"/projects/{s.project.id}/label/queue")
    assignment_id = SLOT.search(queue.text).group(1)  # type: ignore[union-attr]
    assignment = await session.get(Assignment, uuid.UUID(assignment_id))
    assert assignment is not None
    critique_id = assignment.assistance["critiques"][0]
    first, second = assignment.shown_order
    fields = {
        "verdict": f"c:{first}:",
        f"cr-{critique_id}": "invalid",
        f"ch-{critique_id}": "no",
        f"rc-{second}": "Misses the point.",
        f"rs-{second}": "0,3",
    }
    answer = await rater.post(f"/assignments/{assignment_id}/judge", **fields)
    assert answer.status_code == 200, answer.text
    judgment = await session.scalar(select(Judgment).where(Judgment.assignment_id == assignment.id))
    assert judgment is not None
    rating = (await session.scalars(select(CritiqueRating))).one()
    assert (rating.verdict, rating.helpful) == ("invalid", False)
    mine = (await session.scalars(select(Critique).where(Critique.judgment_id == judgment.id))).one()
    assert (mine.candidate_id, mine.span_start, mine.span_end) == (second, 0, 3)
    # The revision page shows them as sent.
    revise = await rater.client.get(f"/judgments/{judgment.id}/revise")
    assert f'name="cr-{critique_id}" value="invalid" data-critique-key="n" checked' in revise.text
    assert "Misses the point." in revise.text
    await rater.aclose()


async def test_page_refusals(app, make_setup, session) -> None:
    s = await make_setup(n_items=2, n_raters=1, assistance="always")
    rater = await PageRater(app).login(s.raters[0].email)
    queue = await rater.post(f"/projects/{s.project.id}/label/queue")
    assignment_id = SLOT.search(queue.text).group(1)  # type: ignore[union-attr]
    assignment = await session.get(Assignment, uuid.UUID(assignment_id))
    assert assignment is not None
    critique_id = assignment.assistance["critiques"][0]
    verdict = {"verdict": f"c:{assignment.shown_order[0]}:"}
    for bad in (
        {f"cr-{critique_id}": "great"},
        {"cr-not-an-id": "valid"},
        {f"rs-{critique_id}": "x", f"rc-{critique_id}": "t"},
    ):
        answer = await rater.post(f"/assignments/{assignment_id}/judge", **verdict, **bad)
        assert answer.status_code == 422
        assert unescape(answer.text) == pages.BAD_CRITIQUE_FIELD
    await rater.aclose()
