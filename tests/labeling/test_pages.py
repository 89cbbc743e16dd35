"""The rater page's verdict buttons and form parsing (pure functions)."""

import uuid
from datetime import UTC, datetime

import pytest

from server.errors import Invalid
from server.labeling import pages
from server.labeling.schemas import AssignmentRead, CandidateView, ItemView
from server.models import Project


def view(n: int) -> AssignmentRead:
    now = datetime.now(UTC)
    candidates = [CandidateView(id=uuid.uuid4(), label="ABCDEFGH"[i], text=f"c{i}") for i in range(n)]
    item = ItemView(id=uuid.uuid4(), external_id="x", prompt="p", candidates=candidates)
    return AssignmentRead(
        id=uuid.uuid4(), project_id=uuid.uuid4(), status="leased", leased_at=now, expires_at=now, item=item
    )


def project(**settings: object) -> Project:
    defaults: dict[str, object] = {
        "scale": "binary",
        "allow_tie": False,
        "allow_both_bad": False,
        "rationale": "optional",
    }
    return Project(name="p", **(defaults | settings))


class TestVerdictForm:
    def test_binary(self) -> None:
        v = view(2)
        a, b = (c.id for c in v.item.candidates)
        form = pages.verdict_form(project(), v)
        assert [(o.value, o.label, o.keys) for o in form.options] == [
            (f"c:{a}:", "A is better", ("1", "a")),
            (f"c:{b}:", "B is better", ("2", "b")),
        ]
        assert form.flags == []

    def test_eight_point_runs_from_a_much_better_to_b_much_better(self) -> None:
        v = view(2)
        a, b = (c.id for c in v.item.candidates)
        form = pages.verdict_form(project(scale="8-point", allow_tie=True, allow_both_bad=True), v)
        assert [(o.keys[0], o.label, o.value) for o in form.options] == [
            ("1", "A much better", f"c:{a}:4"),
            ("2", "A better", f"c:{a}:3"),
            ("3", "A somewhat better", f"c:{a}:2"),
            ("4", "A slightly better", f"c:{a}:1"),
            ("5", "B slightly better", f"c:{b}:1"),
            ("6", "B somewhat better", f"c:{b}:2"),
            ("7", "B better", f"c:{b}:3"),
            ("8", "B much better", f"c:{b}:4"),
        ]
        assert [(f.value, f.keys) for f in form.flags] == [("tie", ("t",)), ("both_bad", ("x",))]
        assert ("1\N{EN DASH}8", "from A much better to B much better") in form.keys

    def test_four_point(self) -> None:
        form = pages.verdict_form(project(scale="4-point"), view(2))
        assert [(o.keys[0], o.label, o.value.rsplit(":", 1)[1]) for o in form.options] == [
            ("1", "A much better", "2"),
            ("2", "A slightly better", "1"),
            ("3", "B slightly better", "1"),
            ("4", "B much better", "2"),
        ]

    def test_more_than_two_candidates_rank(self) -> None:
        form = pages.verdict_form(project(scale="8-point"), view(4))
        assert form.ranking
        assert form.options == []
        assert [(s.keys[0], s.value) for s in form.strengths] == [("1", "4"), ("2", "3"), ("3", "2"), ("4", "1")]


class TestVerdictFromForm:
    def parse(self, **fields: str | None) -> object:
        values: dict[str, str | None] = {
            "verdict": None,
            "ranking": None,
            "strength": None,
            "rationale": None,
            "active_ms": None,
        }
        return pages.verdict_from_form(**(values | fields))

    def test_choice_with_strength(self) -> None:
        choice = uuid.uuid4()
        data = pages.verdict_from_form(
            verdict=f"c:{choice}:3", ranking=None, strength=None, rationale="why", active_ms="1200"
        )
        assert (data.choice, data.strength, data.rationale, data.active_ms) == (choice, 3, "why", 1200)

    def test_tie_and_both_bad(self) -> None:
        tie = pages.verdict_from_form(verdict="tie", ranking=None, strength=None, rationale="", active_ms="")
        assert (tie.tie, tie.choice, tie.rationale) == (True, None, None)
        bad = pages.verdict_from_form(verdict="both_bad", ranking=None, strength=None, rationale=None, active_ms=None)
        assert bad.both_bad

    def test_ranking(self) -> None:
        ids = [uuid.uuid4() for _ in range(3)]
        data = pages.verdict_from_form(
            verdict=None, ranking=",".join(map(str, ids)), strength="2", rationale=None, active_ms=None
        )
        assert (data.ranking, data.strength) == (ids, 2)

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({}, pages.NO_VERDICT),
            ({"ranking": ""}, pages.NO_RANKING),
            ({"verdict": "maybe"}, pages.BAD_VERDICT),
            ({"verdict": "c:nope:"}, pages.BAD_VERDICT),
            ({"verdict": "tie", "active_ms": "-5"}, pages.BAD_VERDICT),
            ({"verdict": "tie", "rationale": "x" * 20_001}, pages.RATIONALE_TOO_LONG),
            ({"verdict": "tie", "rationale": "a\x00b"}, pages.RATIONALE_NUL),
            ({"verdict": "tie", "active_ms": "\N{SUPERSCRIPT TWO}"}, pages.BAD_VERDICT),
            ({"verdict": f"c:{uuid.uuid4()}:\N{SUPERSCRIPT TWO}"}, pages.BAD_VERDICT),
            ({"verdict": f"c:{uuid.uuid4()}:" + "9" * 5000}, pages.BAD_VERDICT),
            ({"ranking": str(uuid.uuid4()), "strength": "9" * 5000}, pages.BAD_VERDICT),
        ],
    )
    def test_refusals(self, fields: dict[str, str], message: str) -> None:
        with pytest.raises(Invalid) as raised:
            self.parse(**fields)
        assert raised.value.message == message

    def test_a_longer_active_time_is_taken_as_a_day(self) -> None:
        assert self.parse(verdict="tie", active_ms="9" * 5000).active_ms == 86_400_000  # type: ignore[attr-defined]
        assert self.parse(verdict="tie", active_ms="000042").active_ms == 42  # type: ignore[attr-defined]
