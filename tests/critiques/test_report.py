"""The assistance experiment report through the database (server/critiques/report.py) and the API.

A fixed small data set with known arms, gold answers, planted flaws, marks and times; the figures
the report gives are compared with the numbers worked out by hand in the comments.
"""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.critiques import report
from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Assignment, Candidate, Flaw, Item, Judgment, PlantedFlaw, Project, ProjectMember, Role, User
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items

# Preferred candidate (upload position) per item i0..i3, the arm (A assisted, U unassisted) and
# seconds per judgment. R4's judgments were made outside the experiment: they count for the others'
# aggregated labels but are not part of the comparison.
VERDICTS = {
    "R1": ([0, 1, 1, 0], "AAUU", [10, 20, 30, 40]),
    "R2": ([0, 0, 1, 0], "UAAU", [15, 25, 35, 45]),
    "R3": ([1, 1, 0, 0], "AUUA", [50, 60, 70, 80]),
    "R4": ([0, 1, 1, 0], "----", [5, 5, 5, 5]),
}
GOLD = {0: {"preferred": 0}, 1: {"preferred": 1}}  # items i0 and i1 are gold
PLANTED = {0: (1, 0, 5), 2: (0, 2, 6)}  # item -> (candidate position, start, end)
MARKS = {("R3", 0): (1, 10, 12), ("R3", 2): (0, 4, 8)}  # (rater, item) -> (candidate, start, end)


@dataclass
class World:
    admin: User
    raters: dict[str, User]
    project: Project
    token: str


async def _world(session: AsyncSession) -> World:
    admin = await create_user(session, role=Role.admin)
    raters = {name: await create_user(session, email=f"{name.lower()}@example.com") for name in VERDICTS}
    project = await create_project(session, admin, members=tuple(raters.values()), overlap=4, assistance="experiment")
    await import_items(session, project, admin, native_items(4))
    items = list(await session.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.seq)))
    positions = {
        (c.item_id, c.position): c.id
        for c in await session.scalars(select(Candidate).where(Candidate.item_id.in_([i.id for i in items])))
    }
    for name, (preferred, arms, seconds) in VERDICTS.items():
        for k in range(4):
            leased = await labeling.next_assignment(session, project=project, rater=raters[name])
            assert leased is not None
            assert leased.item.id == items[k].id
            item = items[k]
            submitted = await labeling.submit(
                session,
                assignment_id=leased.assignment.id,
                rater=raters[name],
                data=JudgmentCreate(choice=positions[(item.id, preferred[k])], active_ms=seconds[k] * 1000),
            )
            judgment = submitted.judgment
            arm = arms[k]
            decision = None if arm == "-" else {"policy": "experiment", "ratio": 0.5, "shown": arm == "A"}
            await session.execute(
                update(Assignment).where(Assignment.id == leased.assignment.id).values(assistance=decision)
            )
            await session.execute(
                update(Judgment).where(Judgment.id == judgment.id).values(assistance_shown=arm == "A", gold=k in GOLD)
            )
            if (name, k) in MARKS:
                position, start, end = MARKS[(name, k)]
                session.add(
                    Flaw(
                        project_id=project.id,
                        item_id=item.id,
                        candidate_id=positions[(item.id, position)],
                        judgment_id=judgment.id,
                        span_start=start,
                        span_end=end,
                    )
                )
            await session.commit()
    for k, answer in GOLD.items():  # made gold once judged: gold items are not served through the queue
        await session.execute(update(Item).where(Item.id == items[k].id).values(gold=answer, gold_seq=k + 1, wanted=0))
    for k, (position, start, end) in PLANTED.items():
        session.add(
            PlantedFlaw(
                project_id=project.id,
                item_id=items[k].id,
                candidate_id=positions[(items[k].id, position)],
                span_start=start,
                span_end=end,
                description="planted",
            )
        )
    await session.commit()
    return World(admin, raters, project, await create_token(session, admin))


async def _set_groups(session: AsyncSession, world: World, groups: dict[str, str]) -> None:
    for name, group in groups.items():
        await session.execute(
            update(ProjectMember)
            .where(ProjectMember.project_id == world.project.id, ProjectMember.user_id == world.raters[name].id)
            .values(group=group)
        )
    await session.commit()


class TestRecords:
    async def test_figures_equal_the_hand_computation(self, session: AsyncSession) -> None:
        world = await _world(session)
        figures = await report.assistance_report(session, world.project)
        assert figures["outside"] == 4  # R4's judgments
        # Assisted judgments: R1 i0 i1, R2 i1 i2, R3 i0 i3.
        # gold (i0 wants 0, i1 wants 1): R1 i0 1, R1 i1 1, R2 i1 0, R3 i0 0 -> 2/4.
        # planted (i0 on candidate 1, i2 on candidate 0): R1 i0 prefers 0: caught; R2 i2 prefers 1: caught;
        #   R3 i0 prefers 1 and marks [10, 12) of candidate 1, not overlapping [0, 5): missed -> 2/3.
        # agreement with the other three's label (the minority of a 3-1 split disagrees): i0 is 0,0,1,0
        #   (R3 alone), i1 1,0,1,1 (R2 alone), i2 1,1,0,1 (R3 alone), i3 unanimous:
        #   R1 i0 1, R1 i1 1, R2 i1 0, R2 i2 1, R3 i0 0, R3 i3 1 -> 4/6.
        # seconds 10, 20, 25, 35, 50, 80 -> median 30; flaws marked: R3 i0 one -> 1/6.
        assert figures["arms"]["assisted"] == pytest.approx(
            {
                "judgments": 6,
                "raters": 3,
                "gold_accuracy": 0.5,
                "catch_rate": 2 / 3,
                "agreement": 4 / 6,
                "median_seconds": 30.0,
                "flaws_per_item": 1 / 6,
            }
        )
        # Unassisted: R1 i2 i3, R2 i0 i3, R3 i1 i2.
        # gold: R2 i0 1, R3 i1 1 -> 1; planted: R1 i2 caught, R2 i0 caught, R3 i2 prefers 0 but marks
        #   [4, 8) of candidate 0, overlapping [2, 6): caught -> 3/3; agreement: R3 i2 0, the rest 1 -> 5/6;
        # seconds 30, 40, 15, 45, 60, 70 -> median (40 + 45) / 2; flaws: R3 i2 one -> 1/6.
        assert figures["arms"]["unassisted"] == pytest.approx(
            {
                "judgments": 6,
                "raters": 3,
                "gold_accuracy": 1.0,
                "catch_rate": 1.0,
                "agreement": 5 / 6,
                "median_seconds": 42.5,
                "flaws_per_item": 1 / 6,
            }
        )
        estimates = {m: d["estimate"] for m, d in figures["differences"].items()}
        assert estimates == pytest.approx(
            {
                "gold_accuracy": -0.5,
                "catch_rate": -1 / 3,
                "agreement": -1 / 6,
                "median_seconds": -12.5,
                "flaws_per_item": 0.0,
            }
        )
        catch = figures["differences"]["catch_rate"]
        assert catch["judgments"] == 6
        assert catch["raters"] == 3
        assert catch["sentence"].startswith(
            "With critiques, raters caught 67% of planted flaws vs 100% without (difference -33 points"
        )
        assert catch["sentence"].endswith("6 judgments by 3 raters). Not significant: the 95% interval includes 0.")

    async def test_a_group_keeps_its_raters_only(self, session: AsyncSession) -> None:
        world = await _world(session)
        await _set_groups(session, world, {"R1": "novice", "R2": "novice", "R3": "expert"})
        figures = await report.assistance_report(session, world.project, group="novice")
        # R1 and R2 only; R4 has no group, so nothing of theirs is left out as outside.
        assert figures["outside"] == 0
        assert figures["group"] == "novice"
        # gold assisted R1 i0 1, R1 i1 1, R2 i1 0 -> 2/3; unassisted R2 i0 1 -> 1.
        assert figures["arms"]["assisted"]["gold_accuracy"] == pytest.approx(2 / 3)
        assert figures["arms"]["unassisted"]["gold_accuracy"] == pytest.approx(1.0)
        assert figures["arms"]["assisted"]["raters"] == 2
        # The group's members are part of the cached figure's name: moving R3 in changes the answer.
        await _set_groups(session, world, {"R3": "novice"})
        again = await report.assistance_report(session, world.project, group="novice")
        assert again["arms"]["assisted"]["raters"] == 3

    async def test_unknown_group_and_batch_refused(self, session: AsyncSession) -> None:
        world = await _world(session)
        with pytest.raises(report.Invalid) as refused:
            await report.assistance_report(session, world.project, group="expert")
        assert refused.value.message == (
            "No member of this project is in the group 'expert'; it has no rater groups yet (set them on the "
            "Members page)."
        )
        await _set_groups(session, world, {"R1": "novice", "R3": "lead"})
        with pytest.raises(report.Invalid) as refused:
            await report.assistance_report(session, world.project, group="expert")
        assert (
            refused.value.message == "No member of this project is in the group 'expert'; its groups are lead, novice."
        )
        missing = uuid.uuid4()
        with pytest.raises(report.NotFound) as not_found:
            await report.assistance_report(session, world.project, batch_id=missing)
        assert not_found.value.message == f"No batch {missing} in this project."

    @pytest.mark.parametrize("effect", [0.0, -0.1, 1.5, float("nan"), float("inf"), 0.0004])
    def test_effect_bounds(self, effect: float) -> None:
        with pytest.raises(report.Invalid) as refused:
            report.check_effect(effect)
        assert refused.value.message == report.EFFECT_REFUSED.format(value=effect)

    async def test_nothing_yet(self, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin, assistance="experiment")
        figures = await report.assistance_report(session, project)
        assert figures["statement"] == "No judgments yet: nothing to compare."
        assert figures["arms"]["assisted"]["judgments"] == 0


class TestApi:
    async def test_shape(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        world = await _world(session)
        response = await client.get(
            f"/api/v1/projects/{world.project.id}/assistance-report",
            params={"effect": "0.2"},
            headers=bearer(world.token),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert set(body["arms"]) == {"assisted", "unassisted"}
        assert set(body["arms"]["assisted"]) >= {
            "judgments",
            "raters",
            "gold_accuracy",
            "catch_rate",
            "agreement",
            "median_seconds",
        }
        assert set(body["differences"]) == {
            "gold_accuracy",
            "catch_rate",
            "agreement",
            "median_seconds",
            "flaws_per_item",
        }
        catch = body["differences"]["catch_rate"]
        assert set(catch) >= {"estimate", "ci", "p"}
        assert catch["estimate"] == pytest.approx(-1 / 3)
        assert len(catch["ci"]) == 2
        assert 0 < catch["p"] <= 1
        assert body["effect"] == 0.2
        assert body["assistance"] == "experiment"
        assert body["experiment"] is True

    @pytest.mark.parametrize(
        ("params", "status", "detail"),
        [
            ({"effect": "0"}, 422, "Invalid request: query.effect: Input should be greater than 0"),
            ({"effect": "1.5"}, 422, "Invalid request: query.effect: Input should be less than or equal to 1"),
            ({"effect": "0.0001"}, 422, report.EFFECT_REFUSED.format(value=0.0001)),
            (
                {"group": "expert"},
                422,
                "No member of this project is in the group 'expert'; it has no rater groups yet (set them on the "
                "Members page).",
            ),
            ({"group": "x" * 65}, 422, "Invalid request: query.group: String should have at most 64 characters"),
        ],
    )
    async def test_refusals(
        self, client: httpx.AsyncClient, session: AsyncSession, params: dict[str, str], status: int, detail: str
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin, assistance="experiment")
        token = await create_token(session, admin)
        response = await client.get(
            f"/api/v1/projects/{project.id}/assistance-report", params=params, headers=bearer(token)
        )
        assert response.status_code == status
        assert response.json()["detail"] == detail

    async def test_raters_may_not(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,), assistance="experiment")
        response = await client.get(
            f"/api/v1/projects/{project.id}/assistance-report", headers=bearer(await create_token(session, rater))
        )
        assert response.status_code == 403
