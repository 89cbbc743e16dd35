"""Reward models reported by trainer workers, their scores of open items, and active learning.

A worker reports a model (metrics, cursor range, artefact) and then posts its scores of the
project's open items. Scores are always stored (one row per item, the newest model wins);
when the project has `active_learning` on, the same request also turns each score's
uncertainty into the item's `priority`, which the queue index orders by, so raters are
served the items the model is least sure about first.
"""

import base64
import binascii
import math
import uuid

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import Invalid, NotFound
from server.labeling.queue import lock_for_reorder, rewind_to
from server.models import Candidate, Item, ItemScore, Project, RewardModel, User
from server.rewards.schemas import (
    OpenCandidate,
    OpenItem,
    OpenItemsPage,
    QueuedItem,
    RewardModelCreate,
    ScoreCreate,
    ScoresResult,
)

# Every priority that active learning sets carries this reason prefix, so turning it off
# resets exactly those items and nothing another feature prioritised.
REASON_PREFIX = "uncertain: "
_OPEN_CURSOR_PREFIX = "o1:"

_UPSERT_SCORES = text(
    """
    INSERT INTO item_scores (item_id, reward_model_id, model_version, p, uncertainty, scored_at)
    SELECT s.item_id, :model_id, :version, s.p, s.u, now()
    FROM unnest(CAST(:ids AS uuid[]), CAST(:ps AS float8[]), CAST(:us AS float8[])) AS s(item_id, p, u)
    ON CONFLICT (item_id) DO UPDATE
        SET reward_model_id = excluded.reward_model_id, model_version = excluded.model_version,
            p = excluded.p, uncertainty = excluded.uncertainty, scored_at = excluded.scored_at
        -- a slow worker's older model never overwrites a newer model's opinion
        WHERE item_scores.model_version <= excluded.model_version
    """
)

# Priority from the stored score, set-based: used after a post of scores (those items) and
# when active learning is switched on (every scored item of the project). The caller holds the
# project row (the first lock in the order); items are then locked in id order, FOR NO KEY
# UPDATE so the score rows' foreign-key locks never conflict with it; raters' picks skip locked
# rows (SKIP LOCKED) rather than waiting.
_REASON = f"'{REASON_PREFIX}p=' || to_char(s.p, 'FM0.00') || ' (model v' || s.model_version || ')'"
# Each target is locked by a statement of its own first: a statement that waits for rows does not
# write them (docs/ARCHITECTURE.md "Locks").
_PRIORITISE_TARGET = f"""
        SELECT i.id, s.uncertainty, {_REASON} AS reason
        FROM items i JOIN item_scores s ON s.item_id = i.id
        WHERE i.project_id = :project_id
          AND (CAST(:model_id AS uuid) IS NULL OR (s.reward_model_id = :model_id AND s.item_id = ANY(:ids)))
          AND (i.priority IS DISTINCT FROM s.uncertainty OR i.priority_reason IS DISTINCT FROM {_REASON})
        ORDER BY i.id
        FOR NO KEY UPDATE OF i"""
_LOCK_PRIORITISE_TARGET = text(_PRIORITISE_TARGET)
_PRIORITISE = text(
    f"""
    WITH target AS ({_PRIORITISE_TARGET}
    )
    UPDATE items SET priority = target.uncertainty, priority_reason = target.reason
    FROM target WHERE items.id = target.id
    """
)

_DEPRIORITISE_TARGET = """
        SELECT id FROM items WHERE project_id = :project_id AND starts_with(priority_reason, :prefix)
        ORDER BY id FOR NO KEY UPDATE"""
_LOCK_DEPRIORITISE_TARGET = text(_DEPRIORITISE_TARGET)
_DEPRIORITISE = text(
    f"""
    WITH target AS ({_DEPRIORITISE_TARGET}
    )
    UPDATE items SET priority = 0, priority_reason = NULL FROM target WHERE items.id = target.id
    """
)


async def report(
    session: AsyncSession, *, project: Project, trainer: User, data: RewardModelCreate
) -> tuple[RewardModel, bool]:
    """Record a trained model as the project's next version; a repeat of the same run returns the first."""
    # NO KEY UPDATE: versions count up one at a time, yet raters' inserts (which take KEY SHARE
    # on the project through their foreign keys) are never blocked by it.
    await session.execute(select(Project.id).where(Project.id == project.id).with_for_update(key_share=True))
    existing = await session.scalar(
        select(RewardModel).where(
            RewardModel.project_id == project.id,
            RewardModel.features == data.features,
            RewardModel.cursor_to == data.cursor_to,
        )
    )
    if existing is not None:
        return existing, False
    last = await session.scalar(select(func.max(RewardModel.version)).where(RewardModel.project_id == project.id))
    model = RewardModel(
        project_id=project.id,
        version=(last or 0) + 1,
        features=data.features,
        cursor_from=data.cursor_from,
        cursor_to=data.cursor_to,
        metrics=data.metrics.model_dump(mode="json", exclude_unset=True),
        artefact_path=data.artefact_path,
        artefact_sha256=data.artefact_sha256,
        trainer_id=trainer.id,
    )
    session.add(model)
    await session.flush()
    await session.refresh(model)
    return model, True


async def list_models(session: AsyncSession, project: Project) -> list[RewardModel]:
    """The project's reward models, oldest version first (the order of a chart over time)."""
    return list(
        await session.scalars(
            select(RewardModel).where(RewardModel.project_id == project.id).order_by(RewardModel.version)
        )
    )


async def get_model(session: AsyncSession, project: Project, version: int) -> RewardModel:
    model = await session.scalar(
        select(RewardModel).where(RewardModel.project_id == project.id, RewardModel.version == version)
    )
    if model is None:
        raise NotFound(f"Project '{project.name}' has no reward model version {version}.")
    return model


def _check_scores(scores: list[ScoreCreate]) -> list[float]:
    """Each score's uncertainty, after refusing values that are not probabilities or repeat an item."""
    seen: set[uuid.UUID] = set()
    uncertainties = []
    for index, score in enumerate(scores):
        if not (math.isfinite(score.p) and 0.0 <= score.p <= 1.0):
            raise Invalid(f"scores[{index}].p is {score.p}; a probability must lie between 0 and 1.")
        u = score.uncertainty
        if u is not None and not (math.isfinite(u) and 0.0 <= u <= 1.0):
            raise Invalid(f"scores[{index}].uncertainty is {u}; it must lie between 0 (sure) and 1 (no idea).")
        if score.item_id in seen:
            raise Invalid(f"scores[{index}] repeats item {score.item_id}; send one score per item.")
        seen.add(score.item_id)
        uncertainties.append(u if u is not None else 1.0 - 2.0 * abs(score.p - 0.5))
    return uncertainties


async def record_scores(
    session: AsyncSession, *, project: Project, model: RewardModel, scores: list[ScoreCreate]
) -> ScoresResult:
    """Store a model's scores of items; with active learning on, also set those items' priority."""
    uncertainties = _check_scores(scores)
    ids = [s.item_id for s in scores]
    known = set(await session.scalars(select(Item.id).where(Item.project_id == project.id, Item.id.in_(ids))))
    unknown = [str(i) for i in ids if i not in known]
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise Invalid(f"{len(unknown)} item id(s) are not items of project '{project.name}': {shown}.")
    # Score posts of a project queue up on its row (the first lock in the order); score rows are
    # then written in item id order.
    await lock_for_reorder(session, project.id)
    rows = sorted(zip(ids, [s.p for s in scores], uncertainties, strict=True))
    await session.execute(
        _UPSERT_SCORES,
        {
            "model_id": model.id,
            "version": model.version,
            "ids": [r[0] for r in rows],
            "ps": [r[1] for r in rows],
            "us": [r[2] for r in rows],
        },
    )
    prioritised = 0
    if project.active_learning:
        params = {"project_id": project.id, "model_id": model.id, "ids": ids}
        await session.execute(_LOCK_PRIORITISE_TARGET, params)
        result = await session.execute(_PRIORITISE, params)
        prioritised = result.rowcount  # type: ignore[attr-defined]
    # Only the scored items can have moved (and none, with active learning off).
    if project.active_learning:
        await rewind_to(session, project.id, "i.id = ANY(:ids)", {"ids": ids})
    else:
        await rewind_to(session, project.id, "false", {})
    return ScoresResult(
        model_version=model.version, scored=len(ids), prioritised=prioritised, active_learning=project.active_learning
    )


async def apply_active_learning(session: AsyncSession, project: Project) -> int:
    """Bring item priorities in line with the project's setting: the stored scores, or back to 0."""
    if project.active_learning:
        params: dict[str, object] = {"project_id": project.id, "model_id": None, "ids": []}
        await session.execute(_LOCK_PRIORITISE_TARGET, params)
        result = await session.execute(_PRIORITISE, params)
    else:
        params = {"project_id": project.id, "prefix": REASON_PREFIX}
        await session.execute(_LOCK_DEPRIORITISE_TARGET, params)
        result = await session.execute(_DEPRIORITISE, params)
    return int(result.rowcount)  # type: ignore[attr-defined]


def _encode_open_cursor(external_id: str) -> str:
    return base64.urlsafe_b64encode(f"{_OPEN_CURSOR_PREFIX}{external_id}".encode()).decode().rstrip("=")


def _decode_open_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith(_OPEN_CURSOR_PREFIX):
        raise Invalid("after is not an open-items cursor; pass the next_cursor of the previous page.")
    return raw[len(_OPEN_CURSOR_PREFIX) :]


async def open_items(session: AsyncSession, *, project: Project, after: str | None, limit: int) -> OpenItemsPage:
    """One page of the items still waiting for judgments, with only what a model reads.

    Pages follow the (project_id, external_id) unique index, so each page is one index range
    scan however large the project, and items judged between pages never shift the pages.
    """
    query = select(Item.id, Item.external_id, Item.prompt).where(
        Item.project_id == project.id,
        Item.completed_at.is_(None),
        Item.kind == "comparison",
        Item.gold_seq.is_(None),  # gold items measure raters; they are never reprioritised
    )
    last = _decode_open_cursor(after)
    if last is not None:
        query = query.where(Item.external_id > last)
    rows = (await session.execute(query.order_by(Item.external_id).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    candidates: dict[uuid.UUID, list[OpenCandidate]] = {row.id: [] for row in rows}
    if rows:
        found = await session.execute(
            select(Candidate.item_id, Candidate.id, Candidate.text, Candidate.messages)
            .where(Candidate.item_id.in_(list(candidates)))
            .order_by(Candidate.item_id, Candidate.position)
        )
        for c in found:
            candidates[c.item_id].append(OpenCandidate(id=c.id, text=c.text, messages=c.messages))
    items = [OpenItem(id=row.id, prompt=row.prompt, candidates=candidates[row.id]) for row in rows]
    next_cursor = _encode_open_cursor(rows[-1].external_id) if more else None
    return OpenItemsPage(items=items, next_cursor=next_cursor)


async def queue(session: AsyncSession, *, project: Project, limit: int) -> list[QueuedItem]:
    """The next open items in serving order (the queue index's order), with their scores and reasons."""
    rows = await session.execute(
        select(
            Item.id,
            Item.external_id,
            Item.batch_priority,
            Item.priority,
            Item.priority_reason,
            Item.judged,
            Item.wanted,
            ItemScore.p,
            ItemScore.uncertainty,
            ItemScore.model_version,
            ItemScore.scored_at,
        )
        .outerjoin(ItemScore, ItemScore.item_id == Item.id)
        .where(Item.project_id == project.id, Item.queue_open)
        .order_by(-Item.batch_priority, -Item.priority, Item.seq)  # the queue index's expressions
        .limit(limit)
    )
    return [QueuedItem.model_validate(row, from_attributes=True) for row in rows]
