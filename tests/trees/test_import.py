# ruff: noqa: E501
"""Task trees: subtasks in the import and over the API (nesting, derived ids, refusals)."""

import contextlib
import uuid
from typing import Any

from sqlalchemy import func, select

from server.items import search
from server.models import Candidate, Item, ItemSearch, Role, Scope
from tests.factories import bearer, create_token, create_user, import_items
from tests.trees.conftest import SOURCE, Setup, tree_record


async def items_by_external(session) -> dict[str, Item]:  # type: ignore[no-untyped-def]
    return {i.external_id: i for i in await session.scalars(select(Item).execution_options(populate_existing=True))}


class TestImport:
    async def test_nested_subtasks_are_items_with_derived_ids(self, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record()])
        items = await items_by_external(session)
        assert sorted(items) == ["t1", "t1/0", "t1/1", "t1/1/0", "t1/2"]
        root, check_a, check_b, nested, rating = (items[k] for k in ("t1", "t1/0", "t1/1", "t1/1/0", "t1/2"))
        assert root.parent_id is None
        assert root.kind == "comparison"
        assert check_a.parent_id == root.id
        assert check_a.kind == "check"
        assert check_a.question == "Is the flood season right in A?"
        assert (check_a.span_start, check_a.span_end) == (4, 26)
        candidates = {
            c.position: c.id for c in await session.scalars(select(Candidate).where(Candidate.item_id == root.id))
        }
        assert check_a.subtask_candidate_id == candidates[0]
        assert check_b.subtask_candidate_id == candidates[1]
        assert nested.parent_id == check_b.id
        assert nested.kind == "answer"
        assert nested.subtask_candidate_id == candidates[1]  # the nearest ancestor with responses: the record
        assert (rating.scale_min, rating.scale_max) == (1.0, 5.0)
        assert check_a.prompt == SOURCE  # a subtask shows its tree's source
        # The gate (required by default): the root waits for its 3 direct subtasks, t1/1 for its one.
        assert (root.open_subtasks, check_b.open_subtasks, check_a.open_subtasks) == (3, 1, 0)
        assert not root.queue_open
        assert not check_b.queue_open
        assert check_a.queue_open
        assert all(i.wanted == s.project.overlap for i in items.values())

    async def test_questions_are_found_by_the_word_search(self, make_setup, session) -> None:
        await make_setup([tree_record()])
        await search.indexing_done()
        batch_id = (await items_by_external(session))["t1"].batch_id
        for pending in ((), (search.Pending(batch_id, 0),)):  # indexed, then as if none were
            found = await session.scalars(
                select(Item.external_id).where(search.matches(Item, "season", pending)).order_by(Item.external_id)
            )
            assert list(found) == ["t1/0", "t1/1", "t1/1/0"], pending

    async def test_reupload_adds_nothing(self, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record()])
        before = len(await items_by_external(session))
        with contextlib.suppress(AssertionError):  # import_items asserts a batch id: nothing new, no batch
            await import_items(session, s.project, s.admin, [tree_record()])
        assert len(await items_by_external(session)) == before

    async def test_optional_gate_leaves_parents_open(self, make_setup, session) -> None:
        await make_setup([tree_record()], subtasks_gate="optional")
        items = await items_by_external(session)
        assert items["t1"].open_subtasks == 0
        assert items["t1"].queue_open

    async def test_own_overlap_and_group(self, make_setup, session) -> None:
        await make_setup([tree_record(overlap=3, group="expert")])
        check = (await items_by_external(session))["t1/0"]
        assert (check.wanted, check.pool) == (3, "expert")

    async def test_comparison_subtask_has_its_own_responses(self, make_setup, session) -> None:
        record = tree_record()
        record["subtasks"] = [
            {"kind": "comparison", "question": "Which intro is clearer?",
             "responses": [{"text": "intro one"}, {"text": "intro two"}],
             "subtasks": [{"kind": "check", "question": "Is intro two grammatical?", "candidate": 1}]},
        ]  # fmt: skip
        await make_setup([record])
        items = await items_by_external(session)
        texts = [
            c.text
            for c in await session.scalars(
                select(Candidate).where(Candidate.item_id == items["t1/0"].id).order_by(Candidate.position)
            )
        ]
        assert texts == ["intro one", "intro two"]
        target = await session.get(Candidate, items["t1/0/0"].subtask_candidate_id)
        assert target is not None
        assert target.text == "intro two"

    async def test_refusals_name_the_field(self, client, make_setup) -> None:
        s: Setup = await make_setup()
        base = {"id": "x", "prompt": "p", "responses": [{"text": "abc"}, {"text": "def"}]}
        deep: dict[str, Any] = {"kind": "check", "question": "q"}
        for _ in range(4):
            deep = {"kind": "check", "question": "q", "subtasks": [deep]}
        cases = [
            ([{"kind": "poll", "question": "q"}], "subtasks[0].kind must be one of comparison, check, rating, answer."),
            ([{"kind": "check"}], "subtasks[0].question is missing; a check subtask asks a question."),
            ([{"kind": "check", "question": "q", "candidate": 2}],
             "subtasks[0].candidate must be the index of a response (0 to 1)."),
            ([{"kind": "check", "question": "q", "candidate": 0, "span": [0, 9]}],
             "subtasks[0].span [0, 9] ends past the end of the response, which is 3 characters (Unicode code points) long."),
            ([{"kind": "check", "question": "q", "span": [0, 1]}],
             "subtasks[0].span needs candidate: the response the span is in."),
            ([{"kind": "rating", "question": "q"}], "subtasks[0].scale is missing; a rating needs its scale as [min, max]."),
            ([{"kind": "rating", "question": "q", "scale": [5, 1]}],
             "subtasks[0].scale [5, 1] is empty or reversed: min must be less than max."),
            ([{"kind": "check", "question": "q", "scale": [1, 5]}],
             "subtasks[0].scale belongs to a rating; a check subtask has no scale."),
            ([{"kind": "comparison", "question": "q"}], "subtasks[0].responses needs at least 2 responses to compare."),
            ([{"kind": "check", "question": "q", "overlap": 0}], "subtasks[0].overlap must be a whole number from 1 to 100."),
            ([{"kind": "check", "question": "q", "group": ""}],
             "subtasks[0].group must be a rater group tag of 1 to 64 characters."),
            ([{"kind": "check", "question": "q", "colour": 1}],
             'subtasks[0] has unknown key "colour"; allowed keys: candidate, gold, group, kind, message, overlap, '
             "question, responses, scale, span, subtasks."),
            # Gold in a tree: a check's yes or no, a rating's value on its scale, nothing else.
            ([{"kind": "check", "question": "q", "gold": {"answer": "unsure"}}],
             'subtasks[0].gold.answer must be yes or no; "unsure" is not a known answer.'),
            ([{"kind": "check", "question": "q", "gold": {"answer": "maybe"}}],
             "subtasks[0].gold.answer must be yes or no, got 'maybe'."),
            ([{"kind": "check", "question": "q", "gold": {"preferred": 0}}],
             "subtasks[0].gold.preferred does not fit a check: its gold is answer (yes or no)."),
            ([{"kind": "check", "question": "q", "gold": {"explanation": "x"}}],
             'subtasks[0].gold.answer is missing: a check\'s gold is {"answer": "yes"} or {"answer": "no"}.'),
            ([{"kind": "check", "question": "q", "gold": "yes"}],
             'subtasks[0].gold must be an object such as {"answer": "yes"} for a check.'),
            ([{"kind": "check", "question": "q", "gold": {"answer": "yes", "colour": 1}}],
             "subtasks[0].gold.colour: Extra inputs are not permitted."),
            ([{"kind": "rating", "question": "q", "scale": [1, 5], "gold": {"value": 7}}],
             "subtasks[0].gold.value 7 is outside the scale: a number from 1 to 5."),
            ([{"kind": "rating", "question": "q", "scale": [1, 5], "gold": {"answer": "yes"}}],
             "subtasks[0].gold.answer does not fit a rating: its gold is value (a number on its scale)."),
            ([{"kind": "answer", "question": "q", "gold": {"answer": "yes"}}],
             "subtasks[0].gold: gold goes on a check or a rating subtask; an answer subtask takes none."),
            ([{"kind": "comparison", "responses": [{"text": "x"}, {"text": "y"}], "gold": {"preferred": 0}}],
             "subtasks[0].gold: gold goes on a check or a rating subtask; a comparison subtask takes none."),
            ([{"kind": "check", "question": "q", "gold": {"answer": "no"}, "subtasks": [{"kind": "check", "question": "r"}]}],
             "subtasks[0].gold: a gold subtask has no subtasks (it measures raters): drop gold or subtasks."),
            ([{"kind": "check", "question": "q", "gold": {"answer": "no"}, "overlap": 2}],
             "subtasks[0].gold: a gold subtask has no overlap (each rater is given it at most once): drop overlap."),
            ([{"kind": "check", "question": "q"}] * 51, "subtasks passes the limit of 50 subtasks per item (its whole tree)."),
            ([deep], "subtasks[0].subtasks[0].subtasks[0].subtasks[0].subtasks nests subtasks 5 levels deep; "
             "at most 4 levels are allowed."),
            ("nope", "subtasks must be a list of subtasks, got string."),
        ]  # fmt: skip
        gold = {"gold": {"preferred": 0}}
        response = await client.post(
            f"/api/v1/projects/{s.project.id}/batches",
            json={"items": [base | gold | {"subtasks": [{"kind": "check", "question": "q"}]}]},
            headers=bearer(s.admin_token),
        )
        assert response.json()["errors"][0]["message"] == (
            "A gold item has no subtasks (it measures raters): drop gold or subtasks."
        )
        for subtasks, message in cases:
            response = await client.post(
                f"/api/v1/projects/{s.project.id}/batches",
                json={"items": [base | {"subtasks": subtasks}]},
                headers=bearer(s.admin_token),
            )
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["message"] == message, subtasks


class TestPost:
    async def test_adds_under_an_item_and_gates_it(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([{"id": "t9", "prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]}])
        root = (await items_by_external(session))["t9"]
        assert root.queue_open
        response = await client.post(
            f"/api/v1/items/{root.id}/subtasks",
            json={"subtasks": [{"kind": "check", "question": "Is a polite?", "candidate": 0,
                                "subtasks": [{"kind": "answer", "question": "Why?"}]}]},
            headers=bearer(s.admin_token),
        )  # fmt: skip
        assert response.status_code == 201, response.text
        body = response.json()
        assert [b["external_id"] for b in body] == ["t9/0", "t9/0/0"]
        assert body[0]["kind"] == "check"
        assert body[0]["parent_id"] == str(root.id)
        items = await items_by_external(session)
        assert items["t9"].open_subtasks == 1
        assert not items["t9"].queue_open
        assert items["t9/0"].open_subtasks == 1
        # A second post appends: its ids continue after the first's.
        response = await client.post(
            f"/api/v1/items/{root.id}/subtasks",
            json={"subtasks": [{"kind": "rating", "question": "How polite?", "scale": [0, 10]}]},
            headers=bearer(s.admin_token),
        )
        assert [b["external_id"] for b in response.json()] == ["t9/1"]
        assert (await items_by_external(session))["t9"].open_subtasks == 2
        # Found by the data browser's word search at once (the import's batch was indexed before).
        found = await session.scalars(
            select(Item.external_id)
            .join(ItemSearch, ItemSearch.item_id == Item.id)
            .where(ItemSearch.search.bool_op("@@")(func.websearch_to_tsquery("english", "polite")))
            .order_by(Item.external_id)
        )
        assert list(found) == ["t9/0", "t9/1"]

    async def test_refusals(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record()])
        items = await items_by_external(session)
        url = f"/api/v1/items/{items['t1'].id}/subtasks"
        response = await client.post(url, json={"subtasks": [{"kind": "check"}]}, headers=bearer(s.admin_token))
        assert response.status_code == 422
        assert response.json()["detail"] == "subtasks[0].question is missing; a check subtask asks a question."
        response = await client.post(url, json={"subtasks": []}, headers=bearer(s.admin_token))
        assert response.status_code == 422
        # Depth counts from the item's own level: t1/1/0 is level 2, so two more levels fit, not three.
        url = f"/api/v1/items/{items['t1/1/0'].id}/subtasks"
        three = {"kind": "check", "question": "q", "subtasks": [{"kind": "check", "question": "q",
                 "subtasks": [{"kind": "check", "question": "q"}]}]}  # fmt: skip
        response = await client.post(url, json={"subtasks": [three]}, headers=bearer(s.admin_token))
        assert response.status_code == 422
        assert "nests subtasks 5 levels deep" in response.json()["detail"]
        # An item raters already have: 409 with a sentence.
        leased = await client.post(f"/api/v1/projects/{s.project.id}/assignments/next", headers=bearer(s.tokens[0]))
        item_id = leased.json()["item"]["id"]
        response = await client.post(
            f"/api/v1/items/{item_id}/subtasks", json={"subtasks": [{"kind": "check", "question": "q"}]},
            headers=bearer(s.admin_token),
        )  # fmt: skip
        assert response.status_code == 409
        assert response.json()["detail"].endswith(
            "is already being judged; subtasks gate an item before its raters start, so add them to items nobody "
            "has been given yet."
        )
        # No such item, and an item of a project not shared with the caller: the same 404, naming no project.
        body = {"subtasks": [{"kind": "check", "question": "q"}]}
        missing = uuid.uuid4()
        response = await client.post(f"/api/v1/items/{missing}/subtasks", json=body, headers=bearer(s.admin_token))
        assert (response.status_code, response.json()["detail"]) == (404, f"No item {missing} is shared with you.")
        outsider = await create_token(session, await create_user(session, role=Role.trainer), Scope.items_write)
        response = await client.post(url, json=body, headers=bearer(outsider))
        assert (response.status_code, response.json()["detail"]) == (
            404,
            f"No item {items['t1/1/0'].id} is shared with you.",
        )

    async def test_rater_token_cannot_add(self, client, make_setup, session) -> None:
        s: Setup = await make_setup([tree_record()])
        root = (await items_by_external(session))["t1"]
        response = await client.post(
            f"/api/v1/items/{root.id}/subtasks",
            json={"subtasks": [{"kind": "check", "question": "q"}]},
            headers=bearer(s.tokens[0]),
        )
        assert response.status_code == 403
