"""The experiment's randomisation: balanced per rater, random per decision, decided at lease time."""

import math
import random
import uuid

import pytest
from sqlalchemy import select

from server.critiques.assistance import assisted_probability
from server.labeling import service as labeling
from server.models import Assignment, Judgment, ProjectMember


def simulate(ratio: float, leases: int, rng: random.Random) -> list[bool]:
    shown = 0
    arms = []
    for decided in range(leases):
        arm = rng.random() < assisted_probability(decided=decided, shown=shown, ratio=ratio)
        shown += arm
        arms.append(arm)
    return arms


@pytest.mark.parametrize("ratio", [0.5, 0.3, 0.05, 0.95, 2 / 3])
def test_each_rater_stays_within_one_of_the_ratio_after_every_lease(ratio: float) -> None:
    rng = random.Random(7)
    for _ in range(200):
        arms = simulate(ratio, 60, rng)
        for n in range(1, len(arms) + 1):
            assert abs(sum(arms[:n]) - ratio * n) < 1


def test_at_half_every_decision_is_a_coin_flip_within_sampling_error() -> None:
    rng = random.Random(11)
    raters = 4000
    runs = [simulate(0.5, 10, rng) for _ in range(raters)]
    sigma = math.sqrt(0.25 / raters)
    for position in range(10):
        share = sum(run[position] for run in runs) / raters
        assert abs(share - 0.5) < 4.5 * sigma, (position, share)
    # Random, not a fixed pattern: both orders of each pair occur about equally.
    first = sum(run[0] for run in runs) / raters
    assert abs(first - 0.5) < 4.5 * sigma


@pytest.mark.parametrize("ratio", [0.3, 0.7, 0.25])
def test_first_decision_and_overall_share_follow_the_ratio(ratio: float) -> None:
    rng = random.Random(13)
    raters = 4000
    runs = [simulate(ratio, 20, rng) for _ in range(raters)]
    sigma = math.sqrt(ratio * (1 - ratio) / raters)
    assert abs(sum(run[0] for run in runs) / raters - ratio) < 4.5 * sigma
    # Over whole blocks of leases every rater's share is the ratio to within 1/n.
    for run in runs[:100]:
        assert abs(sum(run) / len(run) - ratio) < 1 / len(run)


async def test_leases_record_the_decision_and_balance_each_rater(make_setup, session) -> None:
    s = await make_setup(n_items=12, n_raters=2, overlap=2, assistance="experiment", assistance_ratio=0.5)
    for rater in s.raters:
        for _ in range(12):
            leased = await labeling.next_assignment(session, project=s.project, rater=rater)
            assert leased is not None
            submitted = await labeling.submit(
                session,
                assignment_id=leased.assignment.id,
                rater=rater,
                data=labeling.JudgmentCreate(choice=leased.candidates[0].id),
            )
            assert submitted.judgment.assistance_shown == bool(leased.assignment.assistance["shown"])
            await session.commit()
    for rater in s.raters:
        assignments = (await session.scalars(select(Assignment).where(Assignment.rater_id == rater.id))).all()
        shown = [a.assistance["shown"] for a in assignments]
        assert sum(shown) == 6  # |shown - 0.5 n| < 1 at n = 12
        assert {a.assistance["policy"] for a in assignments} == {"experiment"}
        member = await session.get(ProjectMember, (s.project.id, rater.id))
        assert (member.assist_leases, member.assist_shown) == (12, 6)
    judged = (await session.scalars(select(Judgment.assistance_shown))).all()
    assert sum(judged) == 12


async def test_no_decision_is_recorded_when_assistance_is_off(make_setup, session) -> None:
    s = await make_setup(n_items=1)
    leased = await labeling.next_assignment(session, project=s.project, rater=s.raters[0])
    assert leased is not None
    assert leased.assignment.assistance is None
    assert leased.critiques == []
    assert isinstance(leased.assignment.id, uuid.UUID)
