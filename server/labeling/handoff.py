"""The model phase of the rater loop: model judges' pick and what their verdicts decide.

An item imported into a project with a `handoff` rule starts `awaiting_models`, which keeps it out
of the human queue (`queue_open`). Model accounts pick from their own partial index
(`ix_items_models`, in import order) and never from the human queue. A model's verdict never
counts toward `wanted`: it counts toward `model_judged`, and the verdict that brings it to the
rule's `min_judges` routes the item (server/handoff/rules.py), under the item's lock that the
submit already holds (membership → assignment → item: no new lock). Resolved items keep
`awaiting_models` (never served to humans) and get `label_source = 'model'`, a completion time and
a new aggregate revision; the others open to humans with their full `wanted` and the reason.
"""

import random
import uuid

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import Conflict
from server.handoff.rules import ModelVerdict, Route, Rule, route, verdict_key
from server.labeling.lease_sql import insert_lease
from server.models import Assignment, Judgment, Project, ProjectMember, User, UserKind
from server.models.xid import CURRENT_XID

NO_RULE = (
    "Project '{name}' has no hand-off rule, so there is nothing in it for a model judge; an admin sets "
    "`handoff` in the project's settings to offer items to model judges first."
)

# Pick the first item of the model phase the judge has never been given and whose model slots are
# not all taken (live model leases + model judgments < min_judges), after the judge's resume point
# (its last pick's `seq`, kept in `resume_seq`: model accounts never use the human resume point).
# Model judges poll; they never wait for a locked row.
_MODEL_PICK_SQL = (
    """
    WITH picked AS (
        SELECT i.id FROM items i
        WHERE i.project_id = :project_id AND i.awaiting_models AND NOT i.paused AND i.label_source IS NULL
          AND i.seq > :after AND i.leased + i.model_judged < :min_judges
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.rater_id = :rater_id)
        ORDER BY i.seq
        LIMIT 1
        FOR NO KEY UPDATE OF i SKIP LOCKED
    ), bumped AS (
        UPDATE items SET leased = items.leased + 1 FROM picked WHERE items.id = picked.id
        RETURNING items.id, items.seq
    ), resumed AS (
        UPDATE project_members m SET resume_seq = b.seq
        FROM bumped b WHERE m.project_id = :project_id AND m.user_id = :rater_id
    )
    """
    + insert_lease()
    + """
    RETURNING {returning}
    """
)
_MODEL_PICK = select(Assignment).from_statement(
    text(_MODEL_PICK_SQL.format(returning=", ".join(c.name for c in Assignment.__table__.columns))).columns(
        *Assignment.__table__.columns
    )
)

# A model's verdict takes a model slot while the item is still in the model phase and short of
# `min_judges`; otherwise it is stored as surplus ("filled"). Returns whether it counted and the
# item's model judgments after it. The submit has locked the item in a statement of its own first,
# so this one never waits (labeling/service.py, _LOCK_SLOT_ITEMS and _TAKE_SLOT).
_TAKE_MODEL_SLOT = text(
    """
    WITH cur AS (
        SELECT id, awaiting_models AND label_source IS NULL AND model_judged < :min_judges AS takes
        FROM items WHERE id = :item_id FOR NO KEY UPDATE
    )
    UPDATE items i SET
        leased = i.leased - CASE WHEN CAST(:held AS boolean) THEN 1 ELSE 0 END,
        model_judged = i.model_judged + CASE WHEN cur.takes THEN 1 ELSE 0 END
    FROM cur WHERE i.id = cur.id
    RETURNING cur.takes, i.model_judged
    """
)
_RESOLVE = text(
    f"""
    UPDATE items SET label_source = 'model', handoff_reason = NULL, completed_at = now(),
        aggregate_revision = aggregate_revision + 1, aggregate_xid = {CURRENT_XID}
    WHERE id = :item_id
    """
)
_TO_HUMANS = text(
    "UPDATE items SET awaiting_models = false, handoff_reason = :reason, spot_check = :spot WHERE id = :item_id"
)


def rule_of(project: Project) -> Rule | None:
    return Rule.of(project.handoff)


def is_model(rater: User) -> bool:
    return rater.kind == UserKind.model


async def pick(session: AsyncSession, *, project: Project, member: ProjectMember, rater: User) -> Assignment | None:
    """Lease the model judge's next item of the model phase (SKIP LOCKED; None: nothing free now)."""
    rule = rule_of(project)
    if rule is None:
        raise Conflict(NO_RULE.format(name=project.name))
    params = {
        "project_id": project.id,
        "rater_id": rater.id,
        "lease_seconds": project.lease_seconds,
        "min_judges": rule.min_judges,
    }
    leased: Assignment | None = None
    if member.resume_seq is not None:
        leased = await session.scalar(_MODEL_PICK, params | {"after": member.resume_seq})
    if leased is None:  # nothing after the resume point: from the start, so "nothing" is exact
        leased = await session.scalar(_MODEL_PICK, params | {"after": 0})
    return leased


async def take_slot(session: AsyncSession, *, project: Project, item_id: uuid.UUID, held: bool) -> tuple[bool, int]:
    """Lock the item and count a model verdict toward `min_judges`; (counted, model judgments now)."""
    rule = rule_of(project)
    min_judges = rule.min_judges if rule is not None else 0  # no rule any more: nothing counts
    row = (await session.execute(_TAKE_MODEL_SLOT, {"item_id": item_id, "held": held, "min_judges": min_judges})).one()
    return bool(row.takes), int(row.model_judged)


async def decide(session: AsyncSession, *, project: Project, item_id: uuid.UUID) -> Route:
    """Route an item whose model phase is complete (its lock is held); returns the decision."""
    rule = rule_of(project)
    assert rule is not None
    rows = await session.execute(
        select(Judgment.choice_id, Judgment.ranking, Judgment.tie, Judgment.both_bad, Judgment.confidence).where(
            Judgment.item_id == item_id, Judgment.rater_kind == UserKind.model, ~Judgment.surplus, ~Judgment.gold
        )
    )
    verdicts = [
        ModelVerdict(
            key=verdict_key(choice=r.choice_id, ranking=r.ranking, tie=r.tie, both_bad=r.both_bad),
            confidence=r.confidence,
        )
        for r in rows
    ]
    decision = route(verdicts, rule, draw=random.random())
    if decision.resolved:
        await session.execute(_RESOLVE, {"item_id": item_id})
    else:
        await session.execute(_TO_HUMANS, {"item_id": item_id, "reason": decision.reason, "spot": decision.spot_check})
    return decision


HANDOFF_OFF = "hand-off turned off"
# A changed rule, under the project's lock (then items in id order, the lock order): turned off,
# every item still in the model phase opens to humans; a new rule routes the items that already
# have the model judgments it wants (a lowered `min_judges`).
# (The items are locked by a statement of their own first: a statement that waits for rows does not
# write them, docs/ARCHITECTURE.md "Locks".)
_HELD = """
        SELECT id FROM items WHERE project_id = :project_id AND awaiting_models AND label_source IS NULL
        ORDER BY id FOR NO KEY UPDATE"""
_LOCK_HELD = text(_HELD)
_OPEN_ALL = text(
    f"""
    WITH held AS ({_HELD}
    )
    UPDATE items i SET awaiting_models = false, handoff_reason = :reason FROM held WHERE i.id = held.id
    """
)
_DUE = text(
    """
    SELECT id FROM items WHERE project_id = :project_id AND awaiting_models AND label_source IS NULL
      AND model_judged >= :min_judges
    ORDER BY id FOR NO KEY UPDATE
    """
)


async def apply_rule(session: AsyncSession, project: Project) -> None:
    """After the project's `handoff` changed (its row locked first): open or route the held items."""
    rule = rule_of(project)
    if rule is None:
        await session.execute(_LOCK_HELD, {"project_id": project.id})
        await session.execute(_OPEN_ALL, {"project_id": project.id, "reason": HANDOFF_OFF})
        return
    for item_id in list(await session.scalars(_DUE, {"project_id": project.id, "min_judges": rule.min_judges})):
        await decide(session, project=project, item_id=item_id)
