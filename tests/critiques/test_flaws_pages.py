"""Flaws on the pages: planted flaws hidden from raters like gold (diffed answers), the rater page's
`fl` fields, the revision page, and the admin item page (planted, critiques, flaws, catches)."""

import uuid

import orjson
from sqlalchemy import select

from server.models import Assignment, Candidate, Flaw, Item, PlantedFlaw, Role
from tests.critiques.conftest import EMOJI_TEXT, critiqued_items
from tests.factories import bearer, create_project, create_token, create_user, import_items, next_item
from tests.labeling.race import PageRater
from tests.quality.test_gold import _normalised, orjson_dumps
from tests.web.admin import login_as


async def test_a_rater_cannot_tell_an_item_with_planted_flaws(app, client, session) -> None:
    """The same items with and without planted flaws (in two projects): the same page, lease and
    judgment answers on the API and the page, flaws marked included."""
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    token = await create_token(session, rater)
    seen: dict[str, list[str]] = {"api": [], "page": [], "judgment": [], "page judgment": []}
    for planted in (True, False):
        items = [
            {"id": f"x-{i}", "prompt": "Same question?", "responses": [{"text": "Same words"}, {"text": "Same words"}]}
            for i in (1, 2)
        ]
        if planted:
            for item in items:
                item["responses"][0]["planted"] = [{"span": [0, 4], "description": "Planted here."}]
        project = await create_project(session, admin, members=(rater,), assistance="always")
        await import_items(session, project, admin, items)
        assert len((await session.scalars(select(PlantedFlaw).where(PlantedFlaw.project_id == project.id))).all()) == (
            2 if planted else 0
        )
        page = await PageRater(app).login(rater.email)
        html = (await page.post(f"/projects/{project.id}/label/queue")).text  # leases x-1 and x-2
        assert "data-flaws-of" in html  # flaw marking is on in both
        lease = (await next_item(client, project, token)).json()
        first = lease["item"]["candidates"][0]["id"]
        flaw = {"candidate_id": first, "span": [0, 4], "severity": "major", "note": "n"}
        judged = await client.post(
            f"/api/v1/assignments/{lease['id']}/judgment",
            json={"choice": first, "flaws": [flaw]},
            headers=bearer(token),
        )
        assert judged.status_code == 201, judged.text
        ahead = await session.scalar(
            select(Assignment).where(Assignment.project_id == project.id, Assignment.id != uuid.UUID(lease["id"]))
        )
        assert ahead is not None
        field = orjson.dumps({"candidate_id": str(ahead.shown_order[0]), "span": [5, 10], "severity": "minor"})
        page_judged = await page.post(
            f"/assignments/{ahead.id}/judge", verdict=f"c:{ahead.shown_order[0]}:", ahead="", fl=field.decode()
        )
        assert page_judged.status_code == 200
        await page.aclose()
        stored = (await session.scalars(select(Flaw).where(Flaw.project_id == project.id))).all()
        assert sorted((f.span_start, f.severity) for f in stored) == [(0, "major"), (5, "minor")]
        answers = {
            "page": html,
            "api": orjson_dumps(lease),
            "judgment": orjson_dumps(judged.json()),
            "page judgment": page_judged.text,
        }
        for kind, answer in answers.items():
            seen[kind].append(_normalised(answer, project))
    for kind, (with_planted, without) in seen.items():
        assert with_planted == without, kind


async def test_page_refusals_are_sentences(app, client, session) -> None:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,), assistance="always")
    await import_items(session, project, admin, critiqued_items(1))
    page = await PageRater(app).login(rater.email)
    await page.post(f"/projects/{project.id}/label/queue")
    assignment = await session.scalar(select(Assignment).where(Assignment.project_id == project.id))
    assert assignment is not None
    cand = str(assignment.shown_order[0])
    ok = {"candidate_id": cand, "span": [0, 2], "severity": "minor"}
    cases = [
        (["not json"], "A marked flaw is not in the page's shape; remove it, mark it again and submit."),
        ([orjson.dumps(ok | {"severity": ""}).decode()], "Give each marked flaw a severity: minor, major or critical."),
        ([orjson.dumps(ok | {"note": "x" * 1001}).decode()],
         "A flaw's note is longer than 1,000 characters; please shorten it."),
        ([orjson.dumps(ok).decode()] * 51, "You marked more than 50 flaws; remove some before submitting."),
        ([orjson.dumps(ok | {"span": [0, 999]}).decode()], None),  # the judgment's own sentence
    ]  # fmt: skip
    for fields, message in cases:
        response = await page.post(f"/assignments/{assignment.id}/judge", verdict=f"c:{cand}:", ahead="", fl=fields)
        assert response.status_code == 422, response.text
        assert (message or "flaws[0].span [0, 999] ends past the end of") in response.text.replace("&#39;", "'")
    await page.aclose()
    assert (await session.scalars(select(Flaw))).all() == []


async def test_admin_item_page_shows_planted_critiques_flaws_and_catches(client, session) -> None:
    admin, csrf = await login_as(client, session)
    raters = [await create_user(session) for _ in range(2)]
    project = await create_project(session, admin, members=tuple(raters), assistance="always", overlap=2)
    await import_items(session, project, admin, critiqued_items(1))
    item = (await session.scalars(select(Item))).one()
    first, second = (await session.scalars(select(Candidate).order_by(Candidate.position))).all()
    url = f"/admin/items/{item.id}/planted"
    headers = {"X-CSRF-Token": csrf}
    # Plant through the page form; refusals are sentences.
    refusals = [
        ({"candidate": "x", "start": "0", "end": "5", "description": "d"}, "Choose the response the flaw is in."),
        ({"candidate": str(first.id), "start": "a", "end": "5", "description": "d"},
         "The start must be a whole number of characters (Unicode code points) from the start of the response."),
        ({"candidate": str(first.id), "start": "0", "end": "5", "description": " "},
         "Describe the planted flaw: what is wrong in the marked text."),
        ({"candidate": str(first.id), "start": "0", "end": "50", "description": "d"},
         "The span [0, 50] ends past the end of the response, which is 32 characters (Unicode code points) long."),
    ]  # fmt: skip
    for form, message in refusals:
        response = await client.post(url, data=form, headers=headers)
        assert response.status_code == 422, response.text
        assert message in response.text.replace("&#39;", "'")
    form = {"candidate": str(first.id), "start": "26", "end": "32", "description": "Italy is wrong."}
    assert (await client.post(url, data=form, headers=headers)).status_code == 303
    extra = {"candidate": str(second.id), "start": "0", "end": "5", "description": "To remove."}
    assert (await client.post(url, data=extra, headers=headers)).status_code == 303
    removed = (await session.scalars(select(PlantedFlaw).where(PlantedFlaw.candidate_id == second.id))).one()
    gone = await client.post(f"{url}/{removed.id}/remove", headers=headers)
    assert gone.status_code == 303
    assert (await client.post(f"{url}/{removed.id}/remove", headers=headers)).status_code == 404
    # Two raters: one marks the planted flaw, one does not.
    for index, rater in enumerate(raters):
        token = await create_token(session, rater)
        lease = (await next_item(client, project, token)).json()
        body = {"choice": str(first.id)}
        if index == 0:
            body["flaws"] = [
                {"candidate_id": str(first.id), "span": [20, 28], "severity": "critical", "note": "Not Italy"}
            ]
        judged = await client.post(f"/api/v1/assignments/{lease['id']}/judgment", json=body, headers=bearer(token))
        assert judged.status_code == 201, judged.text
    html = (await client.get(f"/admin/items/{item.id}")).text
    assert "Planted flaws (1)" in html
    assert "Italy is wrong." in html
    assert "caught by 1 of 2 raters" in html
    assert "Caught 1 of 1 planted" in html
    assert "Caught 0 of 1 planted" in html
    assert f'<q class="quote text">{EMOJI_TEXT[20:28]}</q>' in html  # the marked flaw's quote
    assert "Not Italy" in html
    assert "Critiques (1)" in html
    assert "Paris is in France, not Italy." in html
    assert "critic-1" in html
    assert 'class="span-mark" data-critiques="' in html  # the planted span is highlighted


async def test_revision_page_lists_the_flaws_sent_and_a_revision_replaces_them(app, client, session) -> None:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    token = await create_token(session, rater)
    project = await create_project(session, admin, members=(rater,), assistance="always")
    await import_items(session, project, admin, critiqued_items(1))
    lease = (await next_item(client, project, token)).json()
    cand = next(c["id"] for c in lease["item"]["candidates"] if c["text"] == EMOJI_TEXT)
    flaw = {"candidate_id": cand, "span": [26, 32], "severity": "critical", "note": "Not Italy <b>"}
    judged = await client.post(
        f"/api/v1/assignments/{lease['id']}/judgment", json={"choice": cand, "flaws": [flaw]}, headers=bearer(token)
    )
    assert judged.status_code == 201, judged.text
    judgment_id = judged.json()["id"]
    page = await PageRater(app).login(rater.email)
    html = (await page.client.get(f"/judgments/{judgment_id}/revise")).text
    assert html.count('name="fl"') == 1
    assert '<q class="flaw-quote">Italy.</q>' in html
    assert "Not Italy &lt;b&gt;" in html  # a note is text, never markup
    # Sending the page again without the flaw (removed on the page) replaces the stored flaws.
    revised = await page.post(f"/judgments/{judgment_id}/revise", verdict=f"c:{cand}:")
    assert revised.status_code in (200, 303), revised.text
    session.expire_all()
    assert (await session.scalars(select(Flaw))).all() == []
    await page.aclose()
