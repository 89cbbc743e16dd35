"""Agreement on check and rating subtasks: a figure per kind, per rater, and on the quality page."""

from typing import Any

import pytest

from server.quality.agreement import agreement
from tests.factories import bearer
from tests.trees.conftest import SOURCE, SUMMARY_A, SUMMARY_B, Setup, answer, lease


def tree(ident: str) -> dict[str, Any]:
    return {
        "id": ident,
        "prompt": SOURCE,
        "responses": [{"text": SUMMARY_A}, {"text": SUMMARY_B}],
        "subtasks": [
            {"kind": "check", "question": "Is A right?", "candidate": 0},
            {"kind": "rating", "question": "How complete is A?", "candidate": 0, "scale": [1, 5]},
        ],
    }


# Each rater's answers (rater 0, 1, 2); unsure is missing.
ANSWERS: dict[str, tuple[Any, Any, Any]] = {
    "t1/0": ("yes", "yes", "no"),
    "t2/0": ("no", "no", "no"),
    "t3/0": ("yes", "unsure", "yes"),
    "t1/1": (4, 4, 5),
    "t2/1": (2, 2.4, 3),
    "t3/1": (1, 1, 1),
}


async def answered_trees(client: Any, make_setup: Any) -> Setup:
    """Three trees whose checks and ratings three raters answered as ANSWERS says."""
    s: Setup = await make_setup([tree("t1"), tree("t2"), tree("t3")], n_raters=3, overlap=3)
    for rater in range(3):
        for _ in range(6):  # the six subtasks; the parents wait for them
            a = await lease(client, s, rater)
            assert a is not None
            assert a["item"]["kind"] in ("check", "rating")
            given = ANSWERS[a["item"]["external_id"]][rater]
            assert (await answer(client, s.tokens[rater], a, answer=given)).status_code == 201
    return s


class TestSubtaskAgreement:
    async def test_figures_per_kind_and_per_rater(self, client, make_setup) -> None:
        s = await answered_trees(client, make_setup)
        response = await client.get(f"/api/v1/projects/{s.project.id}/quality", headers=bearer(s.admin_token))
        assert response.status_code == 200, response.text
        figures = response.json()
        subtasks = figures["agreement"]["subtasks"]
        assert set(subtasks) == {"check", "rating"}
        check, rating = subtasks["check"], subtasks["rating"]
        # By hand: check pairs agreeing 1 of 3 (t1), 3 of 3 (t2), 1 of 1 (t3, unsure left out) = 5 of 7;
        # ratings as shares of the scale, within 0.1: t1 1 of 3, t2 1 of 3 (0.25 and 0.35), t3 3 of 3 = 5 of 9.
        assert (check["level"], check["units"], check["values"]) == ("nominal", 3, 8)
        assert check["pairwise"] == pytest.approx(5 / 7)
        assert (rating["level"], rating["units"], rating["values"], rating["tolerance"]) == ("interval", 3, 9, 0.1)
        assert rating["pairwise"] == pytest.approx(5 / 9)
        expected_check = agreement([[1, 1, 0], [0, 0, 0], [1, 1]], level="nominal")
        expected_rating = agreement(
            [[0.75, 0.75, 1.0], [0.25, 0.35, 0.5], [0.0, 0.0, 0.0]], level="interval", tolerance=0.1
        )
        assert check["alpha"] == pytest.approx(expected_check.alpha)
        assert rating["alpha"] == pytest.approx(expected_rating.alpha)
        assert tuple(check["ci"]) == pytest.approx(expected_check.ci)
        assert tuple(rating["pairwise_ci"]) == pytest.approx(expected_rating.pairwise_ci)
        (batch,) = check["batches"]
        assert (batch["units"], batch["pairwise"]) == (3, pytest.approx(5 / 7))
        # The comparison figure is over the parents' pairs only: none judged twice yet.
        assert figures["agreement"]["units"] == 0
        # Per rater, each answer against each other rater's on the same check: 4 of 5, 3 of 4, 3 of 5.
        per_rater = {r["user_id"]: r["subtasks"] for r in figures["raters"]}
        got = [per_rater[str(r.id)]["check"] for r in s.raters]
        assert [(g["agreement"], g["compared"]) for g in got] == [(0.8, 5), (0.75, 4), (0.6, 5)]
        # Ratings within a tenth: rater 1 agrees with 0 on t1, t2 and with both on t3: 4 of 6.
        assert per_rater[str(s.raters[1].id)]["rating"] == {"agreement": pytest.approx(4 / 6), "compared": 6}

        # The page's lines per kind: tests/web/test_subtask_quality_browser.py.

    async def test_a_project_without_subtasks_has_no_subtask_figures(self, client, make_setup) -> None:
        s: Setup = await make_setup([{"id": "p", "prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]}])
        response = await client.get(f"/api/v1/projects/{s.project.id}/quality", headers=bearer(s.admin_token))
        assert response.json()["agreement"]["subtasks"] == {}
