"""Critiques over the API: import, POST /items/{id}/critiques, assistance at lease time, ratings."""

import uuid
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Assignment, Critique, CritiqueRating, Item, Judgment, ProjectMember, Role, Scope
from tests.critiques.conftest import Setup
from tests.factories import bearer, create_token, create_user, import_items, next_item


async def lease(client: httpx.AsyncClient, s: Setup, rater: int = 0) -> dict[str, Any]:
    response = await next_item(client, s.project, s.tokens[rater])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def judge(client: httpx.AsyncClient, token: str, assignment: dict[str, Any], **extra: Any) -> httpx.Response:
    body = {"choice": assignment["item"]["candidates"][0]["id"], **extra}
    return await client.post(f"/api/v1/assignments/{assignment['id']}/judgment", json=body, headers=bearer(token))


async def first_item(session: AsyncSession, s: Setup) -> Item:
    item = await session.scalar(select(Item).where(Item.project_id == s.project.id).order_by(Item.seq).limit(1))
    assert item is not None
    return item


class TestImport:
    async def test_native_critiques_are_stored_on_their_candidate(self, make_setup, session) -> None:
        s = await make_setup(n_items=1)
        critique = (await session.scalars(select(Critique))).one()
        assert critique.text == "Paris is in France, not Italy."
        assert critique.author_model == "critic-1"
        assert (critique.span_start, critique.span_end, critique.severity) == (26, 32, "major")
        item = await first_item(session, s)
        assert critique.item_id == item.id

    async def test_refusals_name_line_and_field(self, client, make_setup) -> None:
        s = await make_setup(n_items=0)
        base = {"prompt": "p", "responses": [{"text": "ab😀c"}, {"text": "x"}]}
        cases = [
            ({"candidate": 2, "text": "t", "author": "m"},
             "critiques[0].candidate must be the index of one of the responses, 0 to 1."),
            ({"candidate": 0, "text": "t", "author": "m", "span": [0, 5]},
             "critiques[0].span [0, 5] ends past the end of the response, which is 4 characters "
             "(Unicode code points) long."),
            ({"candidate": 0, "text": "", "author": "m"}, "critiques[0].text is empty."),
            ({"candidate": 0, "text": "t", "author": "m", "severity": "huge"},
             "critiques[0].severity must be one of minor, major, critical."),
            ({"candidate": 0, "text": "t", "author": "m", "score": 1},
             'critiques[0] has unknown key "score"; allowed keys: text, candidate, author, span, message, severity.'),
        ]  # fmt: skip
        for critique, message in cases:
            response = await client.post(
                f"/api/v1/projects/{s.project.id}/batches",
                json={"items": [base | {"critiques": [critique]}]},
                headers=bearer(s.admin_token),
            )
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["message"] == message

    async def test_other_formats_still_refuse_critiques(self, client, make_setup) -> None:
        s = await make_setup(n_items=0)
        record = {"prompt": "p", "chosen": "a", "rejected": "b", "critiques": []}
        response = await client.post(
            f"/api/v1/projects/{s.project.id}/batches",
            json={"items": [record | {"critiques": [{"candidate": 0}]}], "format": "trl"},
            headers=bearer(s.admin_token),
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["message"].startswith('A trl record has unknown key "critiques"')


class TestPost:
    async def test_critique_service_adds_critiques(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1)
        item = await first_item(session, s)
        candidates = await client.get(f"/api/v1/items/{item.id}/critiques", headers=bearer(s.admin_token))
        assert candidates.status_code == 405  # POST only
        cand = (await session.scalars(select(Critique.candidate_id))).one()
        token = await create_token(session, s.admin, Scope.items_write)
        body = {"critiques": [{"candidate_id": str(cand), "text": "Wrong capital.", "author": "critic-2",
                               "span": [8, 13], "severity": "minor"}]}  # fmt: skip
        response = await client.post(f"/api/v1/items/{item.id}/critiques", json=body, headers=bearer(token))
        assert response.status_code == 201, response.text
        (added,) = response.json()
        assert added["author"] == "critic-2"
        assert added["span"] == [8, 13]
        assert added["candidate_id"] == str(cand)

    async def test_refusals(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1)
        item = await first_item(session, s)
        cand = str((await session.scalars(select(Critique.candidate_id))).one())
        url = f"/api/v1/items/{item.id}/critiques"

        async def post(critique: dict[str, Any], token: str = s.admin_token) -> httpx.Response:
            return await client.post(url, json={"critiques": [critique]}, headers=bearer(token))

        ok = {"candidate_id": cand, "text": "t", "author": "m"}
        other = str(uuid.uuid4())
        response = await post(ok | {"candidate_id": other})
        assert response.status_code == 422
        assert response.json()["detail"] == f"critiques[0].candidate_id {other} is not one of this item's candidates."
        response = await post(ok | {"span": [40, 2]})
        assert (
            response.json()["detail"] == "critiques[0].span [40, 2] is empty or reversed: start must be less than end."
        )
        response = await post(ok | {"message": 0})
        assert (
            response.json()["detail"] == "critiques[0].message goes with a span; send span too, or leave message out."
        )
        response = await post(ok, token=s.tokens[0])  # a rater's token has judgments:write only
        assert response.status_code == 403
        assert response.json()["detail"] == "This needs the 'items:write' scope, which a rater account cannot have."
        missing = uuid.uuid4()
        response = await client.post(f"/api/v1/items/{missing}/critiques", json={"critiques": [ok]},
                                     headers=bearer(s.admin_token))  # fmt: skip
        assert response.status_code == 404
        assert response.json()["detail"] == f"No item {missing} is shared with you."
        # A trainer outside the project gets the same answer: nothing tells them the item exists.
        outsider = await create_token(session, await create_user(session, role=Role.trainer), Scope.items_write)
        response = await post(ok, token=outsider)
        assert response.status_code == 404
        assert response.json()["detail"] == f"No item {item.id} is shared with you."
        many = {"critiques": [ok] * 50}
        assert (await client.post(url, json=many, headers=bearer(s.admin_token))).status_code == 201
        response = await client.post(url, json=many, headers=bearer(s.admin_token))
        assert response.status_code == 422
        assert response.json()["detail"] == (
            f"Item {item.id} has 51 critiques; with 50 more it would pass the limit of 100 per item. Nothing was added."
        )


class TestAssistance:
    async def test_never_shows_no_trace(self, client, make_setup) -> None:
        s = await make_setup(n_items=1)
        body = await lease(client, s)
        assert body["assistance_shown"] is False
        assert "assistance" not in body
        assert "critique" not in str(body).lower()
        assert "Paris is in France" not in str(body)

    async def test_always_shows_the_critiques(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, assistance="always")
        body = await lease(client, s)
        assert body["assistance_shown"] is True
        (critique,) = body["assistance"]["critiques"]
        assert set(critique) == {"id", "candidate_id", "text", "author", "span", "message", "severity"}
        assert critique["span"] == [26, 32]
        assignment = await session.get(Assignment, uuid.UUID(body["id"]))
        assert assignment.assistance["shown"] is True
        assert assignment.assistance["critiques"] == [critique["id"]]

    async def test_assisted_and_unassisted_responses_differ_only_in_assistance(
        self, client, make_setup, session
    ) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=2, assistance="experiment")
        for index, assisted in ((0, True), (1, False)):  # at ratio 0.5, one decision made: the other arm next
            await session.execute(
                update(ProjectMember)
                .where(ProjectMember.user_id == s.raters[index].id)
                .values(assist_leases=1, assist_shown=0 if assisted else 1)
            )
        await session.commit()
        shown, hidden = await lease(client, s, 0), await lease(client, s, 1)
        assert (shown["assistance_shown"], hidden["assistance_shown"]) == (True, False)
        for body in (shown, hidden):  # the shown order (and so the letters) is random per assignment
            candidates = [{k: v for k, v in c.items() if k != "label"} for c in body["item"]["candidates"]]
            body["item"]["candidates"] = sorted(candidates, key=lambda c: c["id"])
        different = {k for k in shown.keys() | hidden.keys() if shown.get(k) != hidden.get(k)}
        assert different == {"id", "leased_at", "expires_at", "assistance_shown", "assistance"}
        assert "assistance" not in hidden
        assert "Paris is in France" not in str(hidden)

    async def test_client_cannot_change_the_decision(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1, assistance="never")
        body = await lease(client, s)
        response = await judge(client, s.tokens[0], body, assistance_shown=True)
        assert response.status_code == 422  # not a field of the judgment
        response = await judge(client, s.tokens[0], body)
        judgment = await session.scalar(select(Judgment).where(Judgment.id == uuid.UUID(response.json()["id"])))
        assert judgment.assistance_shown is False


class TestRatings:
    async def test_ratings_and_rater_critiques_are_stored_and_revised(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=2, assistance="always")
        body = await lease(client, s)
        critique = body["assistance"]["critiques"][0]
        cand = body["item"]["candidates"][1]["id"]
        rating = {"critique_id": critique["id"], "verdict": "valid", "helpful": True}
        written = {"candidate_id": cand, "text": "Too short 😀.", "span": [0, 5], "severity": "minor"}
        response = await judge(client, s.tokens[0], body, critique_ratings=[rating], critiques=[written])
        assert response.status_code == 201, response.text
        judgment_id = uuid.UUID(response.json()["id"])
        assert (await session.scalars(select(CritiqueRating.verdict))).all() == ["valid"]
        mine = (await session.scalars(select(Critique).where(Critique.judgment_id == judgment_id))).one()
        assert (mine.author_id, mine.span_end) == (s.raters[0].id, 5)
        # A retry with the same body is the same judgment; with other ratings it is refused.
        again = await judge(client, s.tokens[0], body, critique_ratings=[rating], critiques=[written])
        assert again.status_code == 200
        other = await judge(client, s.tokens[0], body, critique_ratings=[rating | {"verdict": "invalid"}])
        assert other.status_code == 409
        # A revision replaces them.
        revised = await client.patch(
            f"/api/v1/judgments/{judgment_id}",
            json={"choice": body["item"]["candidates"][0]["id"], "critique_ratings": [rating | {"verdict": "unsure"}]},
            headers=bearer(s.tokens[0]),
        )
        assert revised.status_code == 200, revised.text
        assert revised.json()["revision"] == 2
        session.expire_all()
        assert (await session.scalars(select(CritiqueRating.verdict))).all() == ["unsure"]
        assert (await session.scalars(select(Critique).where(Critique.judgment_id == judgment_id))).all() == []

    async def test_rater_critiques_are_shown_to_later_raters_as_assistance(self, client, make_setup) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=2, assistance="always")
        first = await lease(client, s, 0)
        cand = first["item"]["candidates"][0]["id"]
        written = {"candidate_id": cand, "text": "Mine."}
        assert (await judge(client, s.tokens[0], first, critiques=[written])).status_code == 201
        second = await lease(client, s, 1)
        texts = {c["text"]: c["author"] for c in second["assistance"]["critiques"]}
        assert texts == {"Paris is in France, not Italy.": "critic-1", "Mine.": "rater"}

    async def test_a_revision_keeps_an_unchanged_critique_that_others_were_shown(
        self, client, make_setup, session
    ) -> None:
        s = await make_setup(n_items=1, n_raters=2, overlap=2, assistance="always", revision_window_minutes=30)
        first = await lease(client, s, 0)
        cand = first["item"]["candidates"][0]["id"]
        written = {"candidate_id": cand, "text": "Mine.", "span": [0, 2], "severity": "minor"}
        judged = await judge(client, s.tokens[0], first, critiques=[written])
        assert judged.status_code == 201, judged.text
        second = await lease(client, s, 1)
        (mine,) = [c for c in second["assistance"]["critiques"] if c["text"] == "Mine."]
        # The author revises the verdict and sends the same critique: it stays the critique others were shown.
        other = first["item"]["candidates"][1]["id"]
        revised = await client.patch(
            f"/api/v1/judgments/{judged.json()['id']}",
            json={"choice": other, "critiques": [written]},
            headers=bearer(s.tokens[0]),
        )
        assert revised.status_code == 200, revised.text
        assert (await session.scalars(select(Critique.id).where(Critique.text == "Mine."))).all() == [
            uuid.UUID(mine["id"])
        ]
        ratings = [
            {"critique_id": c["id"], "verdict": "valid", "helpful": True} for c in second["assistance"]["critiques"]
        ]
        response = await judge(client, s.tokens[1], second, critique_ratings=ratings)
        assert response.status_code == 201, response.text
        assert len((await session.scalars(select(CritiqueRating))).all()) == 2

    async def test_a_withdrawn_critique_is_no_longer_asked_for(self, client, make_setup, session) -> None:
        s = await make_setup(
            n_items=1, n_raters=2, overlap=2, assistance="always", critique_ratings="required",
            revision_window_minutes=30,
        )  # fmt: skip
        first = await lease(client, s, 0)
        imported = first["assistance"]["critiques"][0]
        cand = first["item"]["candidates"][0]["id"]
        rating = {"critique_id": imported["id"], "verdict": "valid", "helpful": True}
        judged = await judge(
            client, s.tokens[0], first, critique_ratings=[rating], critiques=[{"candidate_id": cand, "text": "Mine."}]
        )
        assert judged.status_code == 201, judged.text
        second = await lease(client, s, 1)
        (mine,) = [c for c in second["assistance"]["critiques"] if c["text"] == "Mine."]
        # The author takes their critique back in a revision: the later rater need not rate it, and a
        # rating of it (sent by a page that showed it) is left out rather than failing.
        revised = await client.patch(
            f"/api/v1/judgments/{judged.json()['id']}",
            json={"choice": cand, "critique_ratings": [rating]},
            headers=bearer(s.tokens[0]),
        )
        assert revised.status_code == 200, revised.text
        withdrawn = {"critique_id": mine["id"], "verdict": "invalid", "helpful": False}
        response = await judge(client, s.tokens[1], second, critique_ratings=[rating, withdrawn])
        assert response.status_code == 201, response.text
        stored = await session.scalars(
            select(CritiqueRating.critique_id).where(CritiqueRating.judgment_id == uuid.UUID(response.json()["id"]))
        )
        assert stored.all() == [uuid.UUID(imported["id"])]

    async def test_rating_refusals(self, client, make_setup) -> None:
        s = await make_setup(n_items=2, assistance="always", critique_ratings="required")
        body = await lease(client, s)
        critique = body["assistance"]["critiques"][0]
        response = await judge(client, s.tokens[0], body)
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "This project asks you to rate every critique shown: say for each whether it is valid, invalid or "
            "unsure, and whether it helped (1 not rated yet)."
        )
        stranger = str(uuid.uuid4())
        response = await judge(
            client, s.tokens[0], body, critique_ratings=[{"critique_id": stranger, "verdict": "valid"}]
        )
        assert response.json()["detail"] == (
            f"critique_ratings[0] rates critique {stranger}, which this assignment did not show you."
        )
        twice = [{"critique_id": critique["id"], "verdict": "valid", "helpful": True}] * 2
        response = await judge(client, s.tokens[0], body, critique_ratings=twice)
        assert response.json()["detail"] == (
            f"critique_ratings[1] rates critique {critique['id']} again; rate each critique once."
        )
        response = await judge(client, s.tokens[0], body, critique_ratings=twice[:1])
        assert response.status_code == 201

    async def test_unassisted_assignment_cannot_rate(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1)
        body = await lease(client, s)
        critique_id = (await session.scalars(select(Critique.id))).one()
        response = await judge(
            client, s.tokens[0], body, critique_ratings=[{"critique_id": str(critique_id), "verdict": "valid"}]
        )
        assert response.status_code == 422
        assert response.json()["detail"] == (
            f"critique_ratings[0] rates critique {critique_id}, which this assignment did not show you."
        )


async def test_imported_items_need_no_critiques(make_setup, session) -> None:
    s = await make_setup(n_items=0)
    await import_items(
        session, s.project, s.admin, [{"id": "x", "prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]}]
    )
    assert (await session.scalars(select(Critique))).all() == []
