"""The rater page over HTTP: the two arms of an experiment, diffed; ratings sent as form fields."""

import re
import uuid
from html import unescape

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.critiques import service as critiques
from server.critiques.flaws import catch_counts
from server.labeling import pages
from server.models import Assignment, Candidate, Critique, CritiqueRating, Flaw, Judgment, ProjectMember
from tests.critiques.conftest import Setup
from tests.factories import bearer, import_items, next_item
from tests.labeling.race import PageRater
from tests.web.html import Element, parse

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


async def test_required_ratings_refuse_a_page_verdict_without_them(app, make_setup, session) -> None:
    s = await make_setup(n_items=2, n_raters=1, assistance="always", critique_ratings="required")
    rater = await PageRater(app).login(s.raters[0].email)
    queue = await rater.post(f"/projects/{s.project.id}/label/queue")
    assignment_id = SLOT.search(queue.text).group(1)  # type: ignore[union-attr]
    assignment = await session.get(Assignment, uuid.UUID(assignment_id))
    assert assignment is not None
    (critique_id,) = assignment.assistance["critiques"]
    verdict = {"verdict": f"c:{assignment.shown_order[0]}:"}
    for missing in ({}, {f"cr-{critique_id}": "valid"}):  # no rating; a verdict without "helpful"
        answer = await rater.post(f"/assignments/{assignment_id}/judge", **verdict, **missing)
        assert answer.status_code == 422
        assert unescape(answer.text) == critiques.RATINGS_REQUIRED.format(missing=1)
    answer = await rater.post(
        f"/assignments/{assignment_id}/judge", **verdict, **{f"cr-{critique_id}": "valid", f"ch-{critique_id}": "yes"}
    )
    assert answer.status_code == 200, answer.text
    await rater.aclose()


# A chat response (spans in messages[k].content with "message": k) and a text response, with Markdown
# syntax and control characters in them; each carries a critique with a span.
CHAT = [
    {"role": "assistant", "content": "Hello \x07 there"},
    {"role": "assistant", "content": "**Paris** 😀 is in Italy."},
]
TEXT = "Paris \x07is in **France**."
CHAT_ITEM = {
    "id": "chat-1",
    "prompt": "Capital?",
    "responses": [
        {"messages": CHAT, "planted": [{"span": [18, 23], "message": 1, "description": "Not Italy."}]},
        {"text": TEXT},
    ],
    "critiques": [
        {"candidate": 0, "text": "Paris is in France.", "author": "critic-1", "span": [18, 24], "message": 1},
        {"candidate": 1, "text": "Bold for nothing.", "author": "critic-1", "span": [13, 23]},
    ],
}


def raw_text(node: "Element | str") -> str:
    """Every text node under `node`, as is (what the browser's textContent reads)."""
    return node if isinstance(node, str) else "".join(raw_text(child) for child in node.children)


async def test_chat_spans_count_in_their_message_and_shown_spans_keep_the_text(app, client, make_setup, session):
    s = await make_setup(n_items=0, n_raters=1, assistance="always")
    await import_items(session, s.project, s.admin, [CHAT_ITEM])
    chat_id = (await session.scalars(select(Candidate.id).where(Candidate.position == 0))).one()
    # The API: the chat critique names its message.
    lease = (await next_item(client, s.project, s.tokens[0])).json()
    by_candidate = {c["candidate_id"]: c for c in lease["assistance"]["critiques"]}
    assert (by_candidate[str(chat_id)]["span"], by_candidate[str(chat_id)]["message"]) == ([18, 24], 1)
    # The page: each span marked in its own message or text; the text nodes hold the stored text exactly
    # (control characters included: their symbol is CSS), and Markdown stays text.
    rater = await PageRater(app).login(s.raters[0].email)
    html = (await rater.post(f"/projects/{s.project.id}/label/queue")).text
    await rater.aclose()
    page = parse(first_slot(html))
    chat = page.find(class_="candidate", **{"data-candidate": str(chat_id)})
    roots = chat.find_all(**{"data-span-root": ""})
    assert [raw_text(r) for r in roots] == [m["content"] for m in CHAT]
    assert [m.text for m in roots[1].find_all("mark", class_="span-mark")] == ["Italy."]
    assert roots[0].find_all("mark") == []
    assert roots[0].find("span", class_="ctl")["data-symbol"] == "\u2407"
    text_root = page.find(class_="candidate", **{"data-candidate": str(lease_other(lease, chat_id))})
    (root,) = text_root.find_all(**{"data-span-root": ""})
    assert raw_text(root) == TEXT
    assert raw_text(root.find("mark", class_="span-mark")) == TEXT[13:23] == "**France**"
    assert "<strong>" not in html
    assert "<em>" not in html
    # A flaw marked in the chat message: stored with its message, and it catches the planted flaw there.
    flaw = {"candidate_id": str(chat_id), "span": [17, 22], "message": 1, "severity": "major"}
    assignment = lease["id"]
    wrong = await client.post(
        f"/api/v1/assignments/{assignment}/judgment",
        json={"choice": str(chat_id), "flaws": [flaw | {"message": 2}]},
        headers=bearer(s.tokens[0]),
    )
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == "flaws[0].message must be a whole number from 0 to 1 (the response has 2)."
    judged = await client.post(
        f"/api/v1/assignments/{assignment}/judgment",
        json={"choice": str(chat_id), "flaws": [flaw]},
        headers=bearer(s.tokens[0]),
    )
    assert judged.status_code == 201, judged.text
    stored = (await session.scalars(select(Flaw))).one()
    assert (stored.span_message, stored.span_start, stored.span_end) == (1, 17, 22)
    assert await catch_counts(session, s.project.id) == {uuid.UUID(judged.json()["id"]): (1, 1)}


def lease_other(lease: dict, candidate_id: uuid.UUID) -> str:
    return next(c["id"] for c in lease["item"]["candidates"] if c["id"] != str(candidate_id))
