"""What a gold judgment decides, inside the submit that stores it (labeling/service.py).

Three project settings act on a rater's gold verdicts:
- feedback (`gold_feedback`): the rater is told whether their answer matched and the gold
  explanation; such a verdict can no longer be revised (labeling/revisions.py);
- the qualification round (`qualification_items` K, `qualification_threshold`): a rater's first K
  items are gold; once K are judged, at or above the threshold they are admitted
  (`project_members.qualified_at`), below it they are not (`qualification_failed_at` and the result
  in words) until an admin admits them or lets them try again;
- the suspension rule (`suspension_window` N, `suspension_threshold`): once an admitted human rater
  has N scored gold judgments, accuracy over the last N below the threshold suspends them in the
  project, with the reason in words. With the rule on, a gold judgment also suspends a rater whose
  agreement is flagged (server/quality/raters.py: their agreement with the label the other raters'
  answers give, or gold, significantly below the project's median rater after the flags' correction,
  and within noise of a coin's), once at least MIN_COMPARED_TO_SUSPEND of their answers were compared,
  in the last computed quality figures (cached per data version, read here as one JSON path of one
  row: nothing is computed in the submit). About ten gold answers cannot tell a random rater from
  an honest one; a hundred judgments compared with the weighted label mostly can. A rater an admin
  has reinstated in the project is not suspended by this part again (the admin has looked at the
  same figures and decided; their flag stays on the quality page, and the gold part still applies).

Scores are those of a judgment's first revision (the verdict first sent: revising cannot repair
or spoil a gold answer). This module only reads and decides; the submit takes the locks and writes
(docs/ARCHITECTURE.md "Locks"). Applies to human accounts only: model accounts are never held back
by a qualification round nor suspended by the rule.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Project, ProjectMember, User, UserKind
from server.quality.gold import GoldAnswer, score
from server.quality.raters import snapshot_name

NOT_ADMITTED = (
    "You did not pass this project's qualification round, so no items are given to you. {result} "
    "Contact the project admin, who can let you try again."
)
NOT_ENOUGH_GOLD = (
    "This project starts with a qualification round of {wanted} gold items, but only {have} could be given to "
    "you, so no further items can be given to you yet. Contact the project admin."
)
ADMIN_NOT_ENOUGH_GOLD = (
    "A qualification round of {wanted} items needs at least {wanted} gold items, but this project has {have}; "
    "add gold items first (import them with a gold answer, or set one on an item's page)."
)

# Each gold verdict of a project (or one rater) as first sent: judgment_revisions keeps the verdicts
# revisions replaced, so revision 1 is there when the judgment was revised, else the row itself.
# Candidates are turned into their upload positions, the indices a gold answer uses.
GOLD_VERDICTS = """
    SELECT j.id AS judgment_id, j.rater_id, i.gold, j.created_at, i.scale_min, i.scale_max,
           cc.position AS choice,
           CASE WHEN r.judgment_id IS NULL THEN j.answer ELSE r.answer END AS answer,
           CASE WHEN r.judgment_id IS NULL THEN j.tie ELSE r.tie END AS tie,
           CASE WHEN r.judgment_id IS NULL THEN j.both_bad ELSE r.both_bad END AS both_bad,
           (SELECT array_agg(c.position ORDER BY o.ord)
              FROM unnest(CASE WHEN r.judgment_id IS NULL THEN j.ranking ELSE r.ranking END)
                   WITH ORDINALITY AS o(id, ord)
              JOIN candidates c ON c.id = o.id) AS ranking
    FROM judgments j
    JOIN items i ON i.id = j.item_id
    LEFT JOIN judgment_revisions r ON r.judgment_id = j.id AND r.revision = 1
    LEFT JOIN candidates cc ON cc.id = CASE WHEN r.judgment_id IS NULL THEN j.choice_id ELSE r.choice_id END
    WHERE j.project_id = :project_id AND j.gold AND i.gold IS NOT NULL{rater}
    ORDER BY j.rater_id, j.seq
    """
_ALL_GOLD = text(GOLD_VERDICTS.format(rater=""))
# One rater's: bounded by the project's gold items (each is served to a rater at most once).
_RATER_GOLD = text(GOLD_VERDICTS.format(rater=" AND j.rater_id = :rater_id"))
_POSITIONS = text("SELECT id, position FROM candidates WHERE item_id = :item_id")
_GOLD_LEFT = text(
    """
    SELECT count(*) FROM items i
    WHERE i.project_id = :project_id AND i.gold_seq IS NOT NULL AND NOT i.paused
      AND (i.pool IS NULL OR i.pool = (SELECT m.group FROM project_members m
                                       WHERE m.project_id = :project_id AND m.user_id = :rater_id))
      AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.rater_id = :rater_id)
    """
)
_ROUND_TAKEN = text(
    """
    SELECT count(*) FROM assignments
    WHERE project_id = :project_id AND rater_id = :rater_id AND gold AND status IN ('leased', 'submitted')
      AND leased_at > coalesce(CAST(:since AS timestamptz), '-infinity')
    """
)


# The rater's agreement flag in the last computed figures, unless an admin has reinstated them in the project.
# A flag asks an admin to look; a suspension acts without one, so the agreement part wants more than
# the flag's minimum (raters.MIN_COMPARED, 20): at 20-50 answers a weak honest rater's agreement
# comes out at a coin's often enough that, replayed live on the simulated crowd, the part
# suspended 12 of 560 honest raters, against 6 with this minimum (docs/BENCHMARKS.md, "Suspension").
MIN_COMPARED_TO_SUSPEND = 50
_AGREEMENT_FLAG = text(
    f"""
    SELECT f->>'text' FROM quality_snapshots s, jsonb_array_elements(s.payload->'raters'->:rater->'flags') f
    WHERE s.project_id = :project_id AND s.name = :name AND f->>'kind' = 'agreement'
      AND CAST(s.payload->'raters'->:rater->>'compared' AS integer) >= {MIN_COMPARED_TO_SUSPEND}
      AND NOT EXISTS (SELECT 1 FROM audit_events e
                      WHERE e.project_id = s.project_id AND e.target_id = CAST(:rater AS uuid)
                        AND e.action = 'member.reinstate')
    """
)


@dataclass(frozen=True, slots=True)
class Scored:
    rater_id: uuid.UUID
    at: datetime
    value: float | None  # None: could not be scored (both bad)


def score_row(row: Any) -> float | None:
    """A row of GOLD_VERDICTS scored against its item's gold answer."""
    return score(
        GoldAnswer.model_validate(row.gold),
        choice=row.choice,
        ranking=list(row.ranking) if row.ranking else None,
        tie=row.tie,
        both_bad=row.both_bad,
        answer=row.answer,
        scale=(row.scale_min, row.scale_max),
    )


async def project_scores(session: AsyncSession, project: Project) -> list[Scored]:
    """Every gold judgment of the project, scored as first sent, by rater, oldest first."""
    rows = await session.execute(_ALL_GOLD, {"project_id": project.id})
    return [Scored(row.rater_id, row.created_at, score_row(row)) for row in rows]


async def rater_scores(session: AsyncSession, project: Project, rater_id: uuid.UUID) -> list[Scored]:
    rows = await session.execute(_RATER_GOLD, {"project_id": project.id, "rater_id": rater_id})
    return [Scored(row.rater_id, row.created_at, score_row(row)) for row in rows]


@dataclass(frozen=True, slots=True)
class Feedback:
    """What the rater is told after a gold item when the project turns feedback on."""

    matched: bool | None  # None: the verdict cannot be scored (both bad, unsure)
    explanation: str | None
    check: bool = False  # a check subtask's gold (its unscored answer is "unsure")

    @classmethod
    def of(cls, answer: GoldAnswer, value: float | None) -> "Feedback":
        """A verdict's score as feedback: matched only when fully right (a whole ranking in order)."""
        matched = None if value is None else value == 1.0
        return cls(matched=matched, explanation=answer.explanation, check=answer.answer is not None)

    @property
    def sentence(self) -> str:
        if self.matched is None and self.check:
            return "This item has a known answer; an unsure answer is not compared with it."
        if self.matched is None:
            return "This item has a known answer; a both-bad verdict is not compared with it."
        if self.matched:
            return "Your answer matched the known answer."
        return "Your answer did not match the known answer."


@dataclass(frozen=True, slots=True)
class Decision:
    """What one gold verdict decides about its rater's membership (nothing, when all None)."""

    qualified: bool | None = None  # True: admitted now; False: not admitted
    qualification_result: str | None = None
    suspended_reason: str | None = None
    rule: str = "gold accuracy"  # which part of the suspension rule decided (the audit event's "rule")

    @property
    def ends_leases(self) -> bool:
        return self.qualified is False or self.suspended_reason is not None


async def verdict_score(
    session: AsyncSession,
    gold: GoldAnswer,
    *,
    item_id: uuid.UUID,
    choice: uuid.UUID | None,
    ranking: Sequence[uuid.UUID] | None,
    tie: bool,
    both_bad: bool,
    answer: Any = None,
    scale: tuple[float | None, float | None] = (None, None),
) -> float | None:
    """A verdict (candidate ids; a subtask's answer) scored against the item's gold answer (upload positions)."""
    if gold.answer is not None or gold.value is not None:
        return score(gold, choice=None, ranking=None, tie=tie, both_bad=both_bad, answer=answer, scale=scale)
    position = {row.id: row.position for row in await session.execute(_POSITIONS, {"item_id": item_id})}
    return score(
        gold,
        choice=None if choice is None else position[choice],
        ranking=[position[c] for c in ranking] if ranking else None,
        tie=tie,
        both_bad=both_bad,
    )


def qualification_pending(project: Project, member: ProjectMember, rater: User) -> bool:
    """Whether this rater still owes (or failed) the project's qualification round."""
    return project.qualification_items > 0 and rater.kind == UserKind.human and member.qualified_at is None


async def round_taken(session: AsyncSession, project: Project, member: ProjectMember) -> int:
    """Gold items of the current qualification round leased or judged."""
    params = {"project_id": project.id, "rater_id": member.user_id, "since": member.qualification_since}
    return int(await session.scalar(_ROUND_TAKEN, params) or 0)


async def gold_left(session: AsyncSession, project: Project, rater_id: uuid.UUID) -> int:
    """Gold items this rater has never been given (what a qualification round can still serve)."""
    return int(await session.scalar(_GOLD_LEFT, {"project_id": project.id, "rater_id": rater_id}) or 0)


def _percent(value: float) -> str:
    return f"{round(100 * value)}%"


def _matched(values: list[float]) -> str:
    total = sum(values)
    return str(int(total)) if total == int(total) else f"{total:.1f}"


def breach(scored: Sequence[float], *, window: int, threshold: float) -> float | None:
    """The suspension rule on a rater's scored gold verdicts, oldest first: the accuracy over the
    last `window` of them when it is below `threshold` (suspend), else None (too few, or enough)."""
    last = list(scored)[-window:]
    if window == 0 or len(last) < window:
        return None
    accuracy = sum(last) / window
    return accuracy if accuracy < threshold else None


async def agreement_flag(session: AsyncSession, project: Project, rater_id: uuid.UUID) -> str | None:
    """The rater's agreement flag in words, from the project's last computed quality figures."""
    params = {"project_id": project.id, "name": snapshot_name(project.fast_seconds), "rater": str(rater_id)}
    flag = await session.scalar(_AGREEMENT_FLAG, params)
    return None if flag is None else str(flag)


async def decide(
    session: AsyncSession,
    *,
    project: Project,
    member: ProjectMember,
    rater: User,
    value: float | None,
    now: datetime,
) -> Decision:
    """What the gold verdict scored `value` (not stored yet) decides, under the project's rules."""
    if rater.kind != UserKind.human or member.suspended_at is not None:
        return Decision()
    if qualification_pending(project, member, rater):
        if member.qualification_failed_at is not None:
            return Decision()
        since = member.qualification_since
        in_round = [s for s in await rater_scores(session, project, rater.id) if since is None or s.at > since]
        round_values = [s.value for s in in_round] + [value]
        if len(round_values) < project.qualification_items:
            return Decision()
        scored = [v for v in round_values if v is not None]
        accuracy = sum(scored) / len(scored) if scored else 0.0
        result = (
            f"{_matched(scored)} of {len(scored)} qualification answers matched ({_percent(accuracy)}); "
            f"the project requires {_percent(project.qualification_threshold)}."
        )
        return Decision(qualified=accuracy >= project.qualification_threshold, qualification_result=result)
    window = project.suspension_window
    if window == 0:
        return Decision()
    flag = await agreement_flag(session, project, rater.id)
    if flag is not None:
        return Decision(suspended_reason=f"Suspended on {now.day} {now:%b}: {flag}.", rule="agreement")
    if value is None:
        return Decision()
    stored = [s.value for s in await rater_scores(session, project, rater.id) if s.value is not None]
    last = [*stored, value][-window:]
    below = breach(last, window=window, threshold=project.suspension_threshold)
    if below is None:
        return Decision()
    reason = (
        f"Suspended on {now.day} {now:%b}: {_matched(last)} of the last {window} gold answers matched "
        f"({_percent(below)}); the project requires {_percent(project.suspension_threshold)}."
    )
    return Decision(suspended_reason=reason)
