"""What a verdict must look like under a project's settings (pure: no database)."""

import uuid
from dataclasses import dataclass
from typing import Any

from server.errors import Invalid
from server.items import subtasks
from server.labeling.schemas import JudgmentCreate
from server.models import Item, Project, RationaleRule, Scale

RATIONALE_REQUIRED = "This project requires a rationale: say in a sentence why you chose."


@dataclass(frozen=True, slots=True)
class Verdict:
    choice: uuid.UUID | None
    ranking: list[uuid.UUID] | None
    strength: int | None
    rationale: str | None


def _check_choice(
    candidate_ids: list[uuid.UUID], data: JudgmentCreate
) -> tuple[uuid.UUID | None, list[uuid.UUID] | None]:
    if data.ranking is not None:
        if data.choice is not None:
            raise Invalid("Send either choice or ranking, not both.")
        if sorted(data.ranking) != sorted(candidate_ids):
            raise Invalid(f"ranking must list each of this item's {len(candidate_ids)} candidate ids exactly once.")
        return data.ranking[0], data.ranking
    if data.choice is not None and data.choice not in candidate_ids:
        raise Invalid(f"choice {data.choice} is not one of this item's candidates.")
    if len(candidate_ids) > 2 and not data.tie and not (data.both_bad and data.choice is None):
        raise Invalid(f"This item has {len(candidate_ids)} candidates: send a full ranking, best first.")
    return data.choice, None


def _check_strength(scale: Scale, choice: uuid.UUID | None, strength: int | None) -> int | None:
    top = scale.max_strength
    if scale == Scale.binary:
        if strength is not None:
            raise Invalid("This project's scale is binary: send no strength.")
        return None
    if choice is None:
        if strength is not None:
            raise Invalid("strength only goes with a choice (a tie or both-bad verdict has none).")
        return None
    if strength is None:
        raise Invalid(
            f"This project's scale is {scale}: send a strength from 1 (slightly better) to {top} (much better)."
        )
    if not 1 <= strength <= top:
        raise Invalid(f"strength must be from 1 to {top} on the {scale} scale; got {strength}.")
    return strength


def _check_rationale(rule: RationaleRule, rationale: str | None) -> str | None:
    text = (rationale or "").strip()
    if rule == RationaleRule.off:
        if text:
            raise Invalid("This project does not take rationales; leave rationale empty.")
        return None
    if rule == RationaleRule.required and not text:
        raise Invalid(RATIONALE_REQUIRED)
    return text or None


def validate_verdict(project: Project, candidate_ids: list[uuid.UUID], data: JudgmentCreate) -> Verdict:
    """Check a submitted verdict against the project's rules; raise Invalid naming what to fix."""
    if data.tie and not project.allow_tie:
        raise Invalid("This project does not allow ties; pick the better candidate.")
    if data.both_bad and not project.allow_both_bad:
        raise Invalid("This project does not allow a both-bad verdict; pick the better candidate.")
    if data.tie and (data.choice is not None or data.ranking is not None):
        raise Invalid("A tie has no preferred candidate: send tie without choice or ranking.")
    choice, ranking = _check_choice(candidate_ids, data)
    if choice is None and not (data.tie or data.both_bad):
        raise Invalid("Send a verdict: choice (the better candidate's id), a ranking, tie or both_bad.")
    return Verdict(
        choice=choice,
        ranking=ranking,
        strength=_check_strength(Scale(project.scale), choice, data.strength),
        rationale=_check_rationale(RationaleRule(project.rationale), data.rationale),
    )


def validate_answer(project: Project, item: Item, data: JudgmentCreate) -> tuple[Verdict, Any]:
    """A subtask's verdict (a check, a rating, an answer): its answer, and the rationale under the project's rule."""
    if data.choice is not None or data.ranking is not None or data.tie or data.both_bad or data.strength is not None:
        raise Invalid(
            f"This item is a {item.kind} subtask: send answer, not a choice, ranking, strength, tie or both_bad."
        )
    answer = subtasks.check_answer(item, data.answer)
    rationale = _check_rationale(RationaleRule(project.rationale), data.rationale)
    return Verdict(choice=None, ranking=None, strength=None, rationale=rationale), answer
