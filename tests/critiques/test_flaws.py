"""Flaws raters mark (part of a judgment, replaced by a revision) and planted flaws (import, API)."""

import hashlib
import io
import uuid
from typing import Any

import orjson
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Candidate, Flaw, Item, PlantedFlaw, Scope
from tests.critiques.conftest import EMOJI_TEXT
from tests.critiques.test_api import judge, lease
from tests.critiques.test_export import lines
from tests.factories import bearer, create_token


def _candidate(body: dict[str, Any], text: str) -> str:
    return next(c["id"] for c in body["item"]["candidates"] if c["text"] == text)


class TestMarkedFlaws:
    async def test_stored_with_the_judgment_and_replaced_by_a_revision(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1)
        body = await lease(client, s)
        cand = _candidate(body, EMOJI_TEXT)
        flaws = [
            {"candidate_id": cand, "span": [26, 32], "severity": "critical", "note": "  Italy is wrong. "},
            {"candidate_id": cand, "span": [0, 5], "severity": "minor"},
        ]
        response = await judge(client, s.tokens[0], body, flaws=flaws)
        assert response.status_code == 201, response.text
        judgment_id = uuid.UUID(response.json()["id"])
        stored = (
            await session.scalars(select(Flaw).where(Flaw.judgment_id == judgment_id).order_by(Flaw.position))
        ).all()
        assert [(f.span_start, f.span_end, f.severity, f.note) for f in stored] == [
            (26, 32, "critical", "Italy is wrong."),
            (0, 5, "minor", None),
        ]
        assert EMOJI_TEXT[26:32] == "Italy."
        # The same body again is a retry; other flaws are another verdict.
        assert (await judge(client, s.tokens[0], body, flaws=list(reversed(flaws)))).status_code == 200
        assert (await judge(client, s.tokens[0], body, flaws=flaws[:1])).status_code == 409
        revised = await client.patch(
            f"/api/v1/judgments/{judgment_id}",
            json={"choice": body["item"]["candidates"][0]["id"], "flaws": [flaws[1] | {"severity": "major"}]},
            headers=bearer(s.tokens[0]),
        )
        assert revised.status_code == 200, revised.text
        session.expire_all()
        assert (await session.scalars(select(Flaw.severity).where(Flaw.judgment_id == judgment_id))).all() == ["major"]

    async def test_refusals(self, client, make_setup, session: AsyncSession) -> None:
        s = await make_setup(n_items=1)
        body = await lease(client, s)
        cand = _candidate(body, EMOJI_TEXT)
        stranger = str(uuid.uuid4())
        ok = {"candidate_id": cand, "span": [0, 5], "severity": "minor"}
        cases: list[tuple[list[dict[str, Any]], str]] = [
            (
                [ok | {"candidate_id": stranger}],
                f"flaws[0].candidate_id {stranger} is not one of this item's candidates.",
            ),
            (
                [ok, ok | {"span": [5, 40]}],
                "flaws[1].span [5, 40] ends past the end of the response, which is 32 "
                "characters (Unicode code points) long.",
            ),
            ([ok | {"span": [4, 4]}], "flaws[0].span [4, 4] is empty or reversed: start must be less than end."),
            ([ok | {"span": [3]}], "flaws[0].span must be [start, end]: two whole numbers, in Unicode code points."),
            ([ok | {"message": 0}], "flaws[0].span is in a text response: send no message index with it."),
            (
                [ok | {"severity": "huge"}],
                "Invalid request: flaws.0.severity: Input should be 'minor', 'major' or 'critical'",
            ),
            ([ok | {"note": "x" * 1001}], "Invalid request: flaws.0.note: String should have at most 1000 characters"),
            ([ok] * 51, "Invalid request: flaws: List should have at most 50 items after validation, not 51"),
        ]
        for flaws, message in cases:
            response = await judge(client, s.tokens[0], body, flaws=flaws)
            assert response.status_code == 422, response.text
            assert response.json()["detail"] == message
        assert (await session.scalars(select(Flaw))).all() == []
        assert (await judge(client, s.tokens[0], body, flaws=[ok] * 50)).status_code == 201


class TestFlawExports:
    async def test_raw_and_critiques_carry_the_flaws_with_the_cursor(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=2, n_raters=1)
        token = await create_token(session, s.admin, Scope.export_read)
        url = f"/api/v1/projects/{s.project.id}/export"
        body = await lease(client, s)
        cand = _candidate(body, EMOJI_TEXT)
        flaw = {"candidate_id": cand, "span": [26, 32], "severity": "major", "note": "Wrong country."}
        judged = await judge(client, s.tokens[0], body, flaws=[flaw])
        assert judged.status_code == 201, judged.text
        raw = await client.get(url, params={"format": "raw"}, headers=bearer(token))
        (row,) = lines(raw)
        assert row["flaws"] == [
            {"candidate_id": cand, "span": [26, 32], "message": None, "severity": "major", "note": "Wrong country."}
        ]
        first = await client.get(url, params={"format": "critiques"}, headers=bearer(token))
        (flaw_row,) = [r for r in lines(first) if r["kind"] == "flaw"]
        assert (flaw_row["critique"], flaw_row["quote"], flaw_row["severity"]) == ("Wrong country.", "Italy.", "major")
        assert flaw_row["author"] == flaw_row["rater"]
        assert flaw_row["author_kind"] == "rater"
        assert (flaw_row["item_id"], flaw_row["candidate_id"], flaw_row["span"]) == (body["item"]["id"], cand, [26, 32])
        # The next pull after the cursor holds the next judgment's flaws only.
        second_lease = await lease(client, s)
        other = _candidate(second_lease, EMOJI_TEXT)
        judged = await judge(
            client, s.tokens[0], second_lease, flaws=[{"candidate_id": other, "span": [0, 5], "severity": "minor"}]
        )
        assert judged.status_code == 201
        second = await client.get(
            url, params={"format": "critiques", "after": first.headers["Assay-Next-Cursor"]}, headers=bearer(token)
        )
        assert [(r["kind"], r["quote"], r["critique"]) for r in lines(second)] == [("flaw", "Paris", None)]
        manifest = (
            await client.get(f"/api/v1/exports/{second.headers['Assay-Export-Id']}", headers=bearer(token))
        ).json()
        assert (manifest["rows"], manifest["sha256"]) == (1, hashlib.sha256(second.content).hexdigest())
        parquet = await client.get(url, params={"format": "raw", "encoding": "parquet"}, headers=bearer(token))
        table = pq.read_table(io.BytesIO(parquet.content)).to_pylist()
        assert sorted(len(orjson.loads(r["flaws"])) for r in table) == [1, 1]


class TestPlantedImport:
    async def test_native_planted_flaws_are_stored_on_their_candidate(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=0)
        record = {
            "id": "p-1",
            "prompt": "p",
            "responses": [
                {"text": EMOJI_TEXT, "planted": [{"span": [26, 32], "description": "Wrong country."}]},
                {"messages": [{"role": "assistant", "content": "Hi 😀 there"}],
                 "planted": [{"span": [3, 4], "message": 0, "description": "An emoji."}]},
            ],
        }  # fmt: skip
        response = await client.post(
            f"/api/v1/projects/{s.project.id}/batches", json={"items": [record]}, headers=bearer(s.admin_token)
        )
        assert response.status_code == 201, response.text
        rows = (await session.scalars(select(PlantedFlaw).order_by(PlantedFlaw.span_start.desc()))).all()
        assert [(p.span_message, p.span_start, p.span_end, p.description) for p in rows] == [
            (None, 26, 32, "Wrong country."),
            (0, 3, 4, "An emoji."),
        ]
        assert rows[0].created_by == s.admin.id
        positions = dict((await session.execute(select(Candidate.id, Candidate.position))).all())
        assert [positions[p.candidate_id] for p in rows] == [0, 1]

    async def test_refusals_name_line_and_field(self, client, make_setup) -> None:
        s = await make_setup(n_items=0)
        ok = {"span": [0, 2], "description": "d"}
        cases = [
            ([ok | {"span": [0, 9]}], "responses[0].planted[0].span [0, 9] ends past the end of the response, which "
             "is 4 characters (Unicode code points) long."),
            ([{"description": "d"}], "responses[0].planted[0].span is missing; say where the flaw is as [start, end]."),
            ([ok | {"description": ""}], "responses[0].planted[0].description is empty."),
            ([ok | {"description": "x" * 2001}],
             "responses[0].planted[0].description is 2,001 characters long; at most 2,000 are allowed."),
            ([ok | {"severity": "major"}], 'responses[0].planted[0] has unknown key "severity"; allowed keys: span, '
             "message, description."),
            ([ok] * 21, "responses[0].planted has 21 entries; a response may have at most 20."),
            ("x", "responses[0].planted must be a list of planted flaws, got string."),
            ([ok | {"message": 0}],
             "responses[0].planted[0].span is in a text response: send no message index with it."),
        ]  # fmt: skip
        for planted, message in cases:
            record = {"prompt": "p", "responses": [{"text": "ab😀c", "planted": planted}, {"text": "x"}]}
            response = await client.post(
                f"/api/v1/projects/{s.project.id}/batches", json={"items": [record]}, headers=bearer(s.admin_token)
            )
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["message"] == message

    async def test_other_formats_refuse_planted(self, client, make_setup) -> None:
        s = await make_setup(n_items=0)
        for fmt, article, record in (
            ("trl", "A", {"prompt": "p", "chosen": "a", "rejected": "b"}),
            ("hh", "An", {"chosen": "\n\nHuman: p\n\nAssistant: a", "rejected": "\n\nHuman: p\n\nAssistant: b"}),
        ):
            response = await client.post(
                f"/api/v1/projects/{s.project.id}/batches",
                json={"items": [record | {"planted": [{"span": [0, 1], "description": "d"}]}], "format": fmt},
                headers=bearer(s.admin_token),
            )
            assert response.status_code == 422
            assert response.json()["errors"][0]["message"].startswith(
                f'{article} {fmt} record has unknown key "planted"'
            )


class TestPlantedApi:
    async def test_put_replaces_and_get_reads(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1)
        item = (await session.scalars(select(Item))).one()
        first, second = (await session.scalars(select(Candidate.id).order_by(Candidate.position))).all()
        url = f"/api/v1/items/{item.id}/planted"
        body = {
            "candidates": [
                {"candidate_id": str(first), "planted": [{"span": [26, 32], "description": " Wrong country. "}]},
                {"candidate_id": str(second), "planted": []},
            ]
        }
        response = await client.put(url, json=body, headers=bearer(s.admin_token))
        assert response.status_code == 200, response.text
        (read,) = response.json()
        assert (read["candidate_id"], read["span"], read["message"], read["description"]) == (
            str(first),
            [26, 32],
            None,
            "Wrong country.",
        )
        assert (await client.get(url, headers=bearer(s.admin_token))).json() == response.json()
        # Replaces: the second PUT's flaws are the only ones.
        body["candidates"] = [{"candidate_id": str(second), "planted": [{"span": [0, 3], "description": "d"}] * 2}]
        response = await client.put(url, json=body, headers=bearer(s.admin_token))
        assert [p["candidate_id"] for p in response.json()] == [str(second)] * 2
        session.expire_all()
        assert len((await session.scalars(select(PlantedFlaw))).all()) == 2
        assert (await client.put(url, json={"candidates": []}, headers=bearer(s.admin_token))).json() == []

    async def test_refusals(self, client, make_setup, session) -> None:
        s = await make_setup(n_items=1)
        item = (await session.scalars(select(Item))).one()
        first = (await session.scalars(select(Candidate.id).order_by(Candidate.position))).first()
        url = f"/api/v1/items/{item.id}/planted"
        stranger = uuid.uuid4()
        ok = {"span": [0, 3], "description": "d"}
        cases = [
            ([{"candidate_id": str(stranger), "planted": [ok]}],
             f"candidates[0].candidate_id {stranger} is not one of this item's candidates."),
            ([{"candidate_id": str(first), "planted": []}, {"candidate_id": str(first), "planted": []}],
             f"candidates[1].candidate_id {first} is listed again; give each candidate's planted flaws in one entry."),
            ([{"candidate_id": str(first), "planted": [ok | {"span": [5, 99]}]}],
             "candidates[0].planted[0].span [5, 99] ends past the end of the response, which is 32 characters "
             "(Unicode code points) long."),
            ([{"candidate_id": str(first), "planted": [ok] * 21}],
             "Invalid request: candidates.0.planted: List should have at most 20 items after validation, not 21"),
            ([{"candidate_id": str(first), "planted": [ok | {"description": "x" * 2001}]}],
             "Invalid request: candidates.0.planted.0.description: String should have at most 2000 characters"),
        ]  # fmt: skip
        for candidates, message in cases:
            response = await client.put(url, json={"candidates": candidates}, headers=bearer(s.admin_token))
            assert response.status_code == 422, response.text
            assert response.json()["detail"] == message
        missing = uuid.uuid4()
        response = await client.put(f"/api/v1/items/{missing}/planted", json={"candidates": []},
                                    headers=bearer(s.admin_token))  # fmt: skip
        assert response.status_code == 404
        assert response.json()["detail"] == f"No item {missing} is shared with you."
        assert (await session.scalars(select(PlantedFlaw))).all() == []
