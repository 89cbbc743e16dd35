"""When a planted flaw counts as caught (critiques/flaws.py): the pure rule by a hand table, and
`catch_counts` over a project's stored judgments."""

import uuid

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.critiques.flaws import MarkedSpan, PlantedSpan, catch_counts, caught, item_catches, prefers_other
from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Candidate, Flaw, Item, PlantedFlaw, Role
from tests.factories import create_project, create_user, import_items, native_items

A, B, C = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)

# (planted, marked, preferred_other, caught): spans are [start, end) in code points.
TABLE = [
    # overlap in the same candidate
    ([PlantedSpan(A, 5, 10)], [MarkedSpan(A, 5, 10)], False, 1),
    ([PlantedSpan(A, 5, 10)], [MarkedSpan(A, 9, 20)], False, 1),  # one code point in common
    ([PlantedSpan(A, 5, 10)], [MarkedSpan(A, 0, 6)], False, 1),
    ([PlantedSpan(A, 5, 10)], [MarkedSpan(A, 6, 7)], False, 1),  # inside
    ([PlantedSpan(A, 5, 10)], [MarkedSpan(A, 0, 50)], False, 1),  # around
    # touching is not overlapping: [0, 5) and [5, 10) share no code point
    ([PlantedSpan(A, 5, 10)], [MarkedSpan(A, 0, 5)], False, 0),
    ([PlantedSpan(A, 5, 10)], [MarkedSpan(A, 10, 12)], False, 0),
    # another candidate, another message
    ([PlantedSpan(A, 5, 10)], [MarkedSpan(B, 5, 10)], False, 0),
    ([PlantedSpan(A, 5, 10, message=1)], [MarkedSpan(A, 5, 10, message=0)], False, 0),
    ([PlantedSpan(A, 5, 10, message=1)], [MarkedSpan(A, 5, 10, message=1)], False, 1),
    ([PlantedSpan(A, 5, 10, message=1)], [MarkedSpan(A, 5, 10)], False, 0),
    # each planted flaw once, however many marks overlap it; one mark can catch two planted flaws
    ([PlantedSpan(A, 5, 10)], [MarkedSpan(A, 5, 6), MarkedSpan(A, 7, 8)], False, 1),
    ([PlantedSpan(A, 0, 4), PlantedSpan(A, 6, 9)], [MarkedSpan(A, 2, 8)], False, 2),
    ([PlantedSpan(A, 0, 4), PlantedSpan(A, 6, 9)], [MarkedSpan(A, 2, 3)], False, 1),
    # preferring the other candidate catches every planted flaw
    ([PlantedSpan(A, 0, 4), PlantedSpan(A, 6, 9)], [], True, 2),
    ([PlantedSpan(A, 0, 4)], [MarkedSpan(A, 0, 4)], True, 1),
    # nothing planted, nothing caught
    ([], [MarkedSpan(A, 0, 4)], True, 0),
    ([PlantedSpan(A, 0, 4)], [], False, 0),
]


@pytest.mark.parametrize(("planted", "marked", "other", "expected"), TABLE)
def test_caught_by_hand(planted, marked, other, expected) -> None:
    assert caught(planted, marked, preferred_other=other) == expected


# (candidates, candidates with planted flaws, preferred, tie, both_bad, prefers the other)
PREFERS = [
    ([A, B], {A}, B, False, False, True),
    ([A, B], {A}, A, False, False, False),  # preferred the flawed one
    ([A, B], {A}, None, True, False, False),  # a tie prefers neither
    ([A, B], {A}, None, False, True, False),  # both bad prefers neither
    ([A, B], {A}, B, False, True, False),
    ([A, B], {A, B}, B, False, False, False),  # both carry planted flaws
    ([A, B], set(), B, False, False, False),
    ([A, B, C], {A}, B, False, False, False),  # not a two-candidate comparison
    ([A, B], {A}, C, False, False, False),  # not a candidate of the item
]


@pytest.mark.parametrize(("candidates", "flawed", "preferred", "tie", "both_bad", "expected"), PREFERS)
def test_prefers_other_by_hand(candidates, flawed, preferred, tie, both_bad, expected) -> None:
    assert prefers_other(candidates, flawed, preferred=preferred, tie=tie, both_bad=both_bad) is expected


async def _candidates(session: AsyncSession, item: Item) -> list[Candidate]:
    return list(
        await session.scalars(select(Candidate).where(Candidate.item_id == item.id).order_by(Candidate.position))
    )


async def test_catch_counts_over_stored_judgments(session: AsyncSession) -> None:
    admin = await create_user(session, role=Role.admin)
    raters = [await create_user(session) for _ in range(4)]
    project = await create_project(
        session, admin, members=tuple(raters), overlap=4, allow_tie=True, allow_both_bad=True
    )
    await import_items(session, project, admin, native_items(1) + native_items(1, start=1, candidates=3))
    pair, triple = list(await session.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.seq)))
    pc, tc = await _candidates(session, pair), await _candidates(session, triple)
    # Two planted flaws in the pair's first response ("Answer 0 to 0"), one in the triple's first.
    await session.execute(
        insert(PlantedFlaw),
        [
            {
                "project_id": project.id,
                "item_id": pair.id,
                "candidate_id": pc[0].id,
                "span_start": 0,
                "span_end": 6,
                "description": "wrong word",
            },
            {
                "project_id": project.id,
                "item_id": pair.id,
                "candidate_id": pc[0].id,
                "span_start": 9,
                "span_end": 11,
                "description": "wrong number",
            },
            {
                "project_id": project.id,
                "item_id": triple.id,
                "candidate_id": tc[0].id,
                "span_start": 0,
                "span_end": 6,
                "description": "wrong word",
            },
        ],
    )
    await session.commit()

    async def judge(rater_index: int, item: Item, data: JudgmentCreate, marks: list[tuple[Candidate, int, int]]):
        rater = raters[rater_index]
        leased = await labeling.next_assignment(session, project=project, rater=rater)
        assert leased is not None
        assert leased.assignment.item_id == item.id
        submitted = await labeling.submit(session, assignment_id=leased.assignment.id, rater=rater, data=data)
        judgment = submitted.judgment
        if marks:
            await session.execute(
                insert(Flaw),
                [
                    {
                        "project_id": project.id,
                        "item_id": item.id,
                        "candidate_id": c.id,
                        "judgment_id": judgment.id,
                        "span_start": s,
                        "span_end": e,
                        "severity": "major",
                    }
                    for c, s, e in marks
                ],
            )
        await session.commit()
        return judgment.id

    # Every rater gets the pair first (items are served in order), then the triple.
    j = {
        "pair-prefers-other": await judge(0, pair, JudgmentCreate(choice=pc[1].id), []),
        "pair-marks-one": await judge(1, pair, JudgmentCreate(choice=pc[0].id), [(pc[0], 2, 4), (pc[1], 0, 3)]),
        "pair-tie-marks-none": await judge(2, pair, JudgmentCreate(tie=True), [(pc[0], 6, 9)]),
        "pair-both-bad-marks-both": await judge(3, pair, JudgmentCreate(both_bad=True), [(pc[0], 0, 12)]),
        "triple-prefers-other": await judge(0, triple, JudgmentCreate(ranking=[tc[1].id, tc[0].id, tc[2].id]), []),
        "triple-marks": await judge(1, triple, JudgmentCreate(ranking=[tc[2].id, tc[1].id, tc[0].id]), [(tc[0], 5, 7)]),
    }
    counts = await catch_counts(session, project.id)
    assert counts == {
        j["pair-prefers-other"]: (2, 2),
        j["pair-marks-one"]: (2, 1),
        j["pair-tie-marks-none"]: (2, 0),
        j["pair-both-bad-marks-both"]: (2, 2),
        j["triple-prefers-other"]: (1, 0),  # three candidates: preferring another is not a catch
        j["triple-marks"]: (1, 1),
    }
    some = [j["pair-marks-one"], j["triple-marks"], uuid.uuid4()]
    assert await catch_counts(session, project.id, some) == {
        j["pair-marks-one"]: (2, 1),
        j["triple-marks"]: (1, 1),
    }
    assert await catch_counts(session, project.id, []) == {}
    assert await catch_counts(session, uuid.uuid4()) == {}
    on_page = await item_catches(session, triple.id)
    assert on_page.by_judgment == {j["triple-prefers-other"]: (1, 0), j["triple-marks"]: (1, 1)}
    (planted_id,) = on_page.by_planted
    assert (on_page.by_planted[planted_id], on_page.judgments) == (1, 2)
    pair_page = await item_catches(session, pair.id)
    assert sorted(pair_page.by_planted.values()) == [2, 3]  # "wrong word" by 3 of 4, "wrong number" by 2 of 4
