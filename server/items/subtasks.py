"""Task trees (issue 12): subtasks stored as items with a parent, their gate, answers and results.

A subtask is an item row (`parent_id`, `kind`, `question`, a rating's `scale_min`/`scale_max`,
the tree candidate it concerns in `subtask_candidate_id` with an optional span, `pool`: the rater
group it is for). It copies its parent's prompt, is served like any item (leases, skips,
revisions) and has its own `wanted`: its `overlap`, or the project's when it was added. Subtasks
are left out of a later overlap change (projects/service.py), so a subtask that completed stays
complete and its parent's gate count stays true.

The gate: under `subtasks_gate = required` a parent's `open_subtasks` is the number of its
direct subtasks not complete, and `queue_open` (the pick's index) requires 0, so a gated parent
costs the pick nothing. The submit that completes a subtask decrements its parent in the same
transaction; both item rows are locked together, in id order, before the slot is taken
(docs/ARCHITECTURE.md "Locks"), so two raters completing the last two subtasks at once open the
parent exactly once. Changing the setting recomputes the counts under the project lock.

A gold subtask (a check or a rating with a known answer) is a gold item: `wanted` 0, served at the
project's gold_rate to each rater at most once (to its pool's members only), never completed. It
is no part of its parent's gate: the counts above leave gold subtasks out, and making a subtask
gold (or ordinary again) moves its parent's count by one (`gold_changed`).
"""

import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.batches.formats import subtasks as parse
from server.batches.formats.records import _Refusal, _text_size
from server.batches.formats.validation import _native_candidate
from server.errors import Conflict, Invalid
from server.items import search
from server.labeling import queue
from server.models import Batch, Item, Judgment, Project, SubtasksGate
from server.models.xid import CURRENT_XID

ANSWERS = ("yes", "no", "unsure")
MAX_ANSWER_CHARS = 2_000


# --- insert ----------------------------------------------------------------------------------------

# One level of subtasks (`depth`), from flat rows `src(line, value, ord)`: each joins its parent (an
# item created earlier in this transaction: `{parents}` restricts it) and, for a `candidate`
# pointer, the candidate of its owner. Comparison subtasks get their own candidates.
_INSERT_LEVEL = """
    WITH src AS ({source}), new AS (
        INSERT INTO items (id, project_id, batch_id, parent_id, kind, question, scale_min, scale_max,
                           subtask_candidate_id, span_message, span_start, span_end, pool, external_id,
                           prompt, metadata, wanted, batch_priority, priority, paused, gold, gold_seq,
                           aggregate_revision, aggregate_xid)
        SELECT gen_random_uuid(), p.project_id, p.batch_id, p.id, src.value ->> 'kind', src.value ->> 'question',
               (src.value ->> 'scale_min')::float8, (src.value ->> 'scale_max')::float8, c.id,
               (src.value ->> 'span_message')::smallint, (src.value ->> 'span_start')::int,
               (src.value ->> 'span_end')::int, src.value ->> 'pool', src.value ->> 'external_id',
               p.prompt, '{{}}'::jsonb,
               CASE WHEN src.value ? 'gold' THEN 0 ELSE coalesce((src.value ->> 'overlap')::smallint, :wanted) END,
               p.batch_priority, p.priority, p.paused,
               -- a gold check or rating: served as gold (wanted 0), its answer its first aggregate revision
               src.value -> 'gold', CASE WHEN src.value ? 'gold' THEN nextval('items_gold_seq') END,
               CASE WHEN src.value ? 'gold' THEN 1 ELSE 0 END,
               CASE WHEN src.value ? 'gold' THEN {xid} END
        FROM src
        JOIN items p ON p.project_id = :project_id AND p.external_id = src.value ->> 'parent' AND {parents}
        LEFT JOIN items o ON o.project_id = :project_id AND o.external_id = src.value ->> 'owner'
        LEFT JOIN candidates c ON c.item_id = o.id AND c.position = (src.value ->> 'candidate')::int
        WHERE (src.value ->> 'depth')::int = :depth
        ORDER BY src.line, src.ord
        ON CONFLICT (project_id, external_id) DO NOTHING
        RETURNING id, external_id, parent_id
    ), cands AS (
        INSERT INTO candidates (id, item_id, position, text, messages, model, metadata)
        SELECT gen_random_uuid(), new.id, r.ord - 1, r.value ->> 'text', r.value -> 'messages',
               r.value ->> 'model', coalesce(r.value -> 'metadata', '{{}}'::jsonb)
        FROM new JOIN src ON src.value ->> 'external_id' = new.external_id
        CROSS JOIN LATERAL jsonb_array_elements(src.value -> 'responses') WITH ORDINALITY AS r(value, ord)
        WHERE src.value ? 'responses'
    )
    SELECT id, parent_id FROM new
    """
_STAGED = (
    "SELECT s.line, st.value, st.ord FROM import_staging s"
    " CROSS JOIN LATERAL jsonb_array_elements(s.subtasks) WITH ORDINALITY AS st(value, ord)"
    " WHERE s.subtasks IS NOT NULL"
)
_POSTED = (
    "SELECT 0 AS line, st.value, st.ord"
    " FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS st(value, ord)"
)
_INSERT_STAGED = text(_INSERT_LEVEL.format(source=_STAGED, parents="p.batch_id = :batch_id", xid=CURRENT_XID))
_INSERT_POSTED = text(
    _INSERT_LEVEL.format(source=_POSTED, parents="(p.id = :root OR p.batch_id = :batch_id)", xid=CURRENT_XID)
)

# A gated parent waits for its new direct subtasks (rows created in this transaction, or locked);
# a gold subtask is never completed (it wants nothing: its judgments measure raters), so it is no gate.
_GATE_NEW = text(
    """
    UPDATE items p SET open_subtasks = p.open_subtasks + n.count
    FROM (SELECT parent_id, count(*) AS count FROM items WHERE id = ANY(:ids) AND gold_seq IS NULL
          GROUP BY parent_id) n
    WHERE p.id = n.parent_id
    """
)


async def _insert_levels(session: AsyncSession, statement: Any, params: dict[str, Any], gated: bool) -> list[uuid.UUID]:
    created: list[uuid.UUID] = []
    for depth in range(1, parse.MAX_DEPTH + 1):
        rows = (await session.execute(statement, params | {"depth": depth})).all()
        if not rows:
            break
        created.extend(r.id for r in rows)
    if gated and created:
        await session.execute(_GATE_NEW, {"ids": created})
    return created


async def insert_staged(session: AsyncSession, *, project: Project, batch: Batch, wanted: int) -> int:
    """The subtasks of the items an import just created (from its staging table); how many."""
    params = {"project_id": project.id, "batch_id": batch.id, "wanted": wanted}
    return len(await _insert_levels(session, _INSERT_STAGED, params, project.subtasks_gate == SubtasksGate.required))


# --- POST /items/{id}/subtasks ------------------------------------------------------------------

_ANCESTRY = text(
    """
    WITH RECURSIVE up AS (
        SELECT id, parent_id, 0 AS depth FROM items WHERE id = :id
        UNION ALL
        SELECT i.id, i.parent_id, up.depth + 1 FROM items i JOIN up ON i.id = up.parent_id WHERE up.depth < 10
    )
    SELECT (SELECT max(depth) FROM up) AS depth, (SELECT id FROM up ORDER BY depth DESC LIMIT 1) AS root
    """
)
_TREE_SIZE = text(
    """
    WITH RECURSIVE down AS (
        SELECT id, 0 AS depth FROM items WHERE id = :root
        UNION ALL
        SELECT i.id, down.depth + 1 FROM items i JOIN down ON i.parent_id = down.id WHERE down.depth < 10
    )
    SELECT count(*) - 1 FROM down
    """
)


async def add(session: AsyncSession, *, item: Item, data: Sequence[dict[str, Any]]) -> list[Item]:
    """Add subtasks (the import's shape) under an item, all or none; returns the new direct ones and theirs.

    Locks: the project row (new items enter the queue, as an import does), then the item.
    """
    from server.batches.service import import_limits  # the import's bounds; batches imports this module

    if not data:
        raise Invalid("subtasks is empty; send at least one subtask.")
    wanted = await queue.lock_for_reorder(session, item.project_id)
    locked = await session.scalar(
        select(Item).where(Item.id == item.id).with_for_update(key_share=True).execution_options(populate_existing=True)
    )
    assert locked is not None
    item = locked
    if item.gold_seq is not None:
        raise Conflict(f"Item {item.external_id} is a gold item; gold items have no subtasks.")
    if item.judged > 0 or item.leased > 0:
        raise Conflict(
            f"Item {item.external_id} is already being judged; subtasks gate an item before its raters "
            "start, so add them to items nobody has been given yet."
        )
    ancestry = (await session.execute(_ANCESTRY, {"id": item.id})).one()
    in_tree = int(await session.scalar(_TREE_SIZE, {"root": ancestry.root}) or 0)
    have = int(await session.scalar(select(func.count()).where(Item.parent_id == item.id)) or 0)
    candidates_of: dict[str, Any] = {}
    owner_id = await _owner(session, item)
    owner = None
    if owner_id is not None:
        owner = await session.get(Item, owner_id)
        from server.models import Candidate

        rows = await session.scalars(
            select(Candidate).where(Candidate.item_id == owner_id).order_by(Candidate.position)
        )
        candidates_of = {"list": [_parsed(c) for c in rows]}
    try:
        flat = parse.flatten(
            list(data),
            parent=item.external_id,
            depth=int(ancestry.depth) + 1,
            owner=owner.external_id if owner else None,
            candidates=candidates_of.get("list", []),
            field="subtasks",
            budget=parse.Budget(parse.MAX_SUBTASKS - in_tree),
            parse_candidate=_native_candidate,
            first_index=have,
        )
        limits = import_limits()
        for row in flat:
            for i, response in enumerate(row.get("responses", ())):
                _text_size(
                    response.get("text", response.get("messages")),
                    f"subtask {row['external_id']} responses[{i}]",
                    limits,
                )
    except _Refusal as exc:
        raise Invalid(exc.message, field=exc.field) from None
    params = {
        "project_id": item.project_id,
        "batch_id": item.batch_id,
        "root": item.id,
        "wanted": wanted,
        "rows": orjson.dumps(flat).decode(),
    }
    project = await session.get_one(Project, item.project_id)
    created = await _insert_levels(session, _INSERT_POSTED, params, project.subtasks_gate == SubtasksGate.required)
    await queue.rewind_to(session, item.project_id, "i.id = ANY(:ids)", {"ids": created})
    await search.index_now(session, created)
    return list(await session.scalars(select(Item).where(Item.id.in_(created)).order_by(Item.seq)))


def _parsed(candidate: Any) -> Any:
    from server.batches.formats.records import ParsedCandidate

    return ParsedCandidate(candidate.text, candidate.messages, candidate.model, {})


async def _owner(session: AsyncSession, item: Item) -> uuid.UUID | None:
    """The nearest item from `item` up whose candidates `candidate` pointers index: one with candidates."""
    current: uuid.UUID | None = item.id
    for _ in range(parse.MAX_DEPTH + 2):
        if current is None:
            return None
        row = (
            await session.execute(
                text(
                    "SELECT parent_id, EXISTS (SELECT 1 FROM candidates WHERE item_id = :id) AS has"
                    " FROM items WHERE id = :id"
                ),
                {"id": current},
            )
        ).one()
        if row.has:
            return current
        current = row.parent_id
    return None


# --- gate ----------------------------------------------------------------------------------------

# Apply a changed `subtasks_gate` (under the project lock): lock every parent in id order, then set
# its count from its subtasks as committed now (the lock makes sure no submit is halfway).
_LOCK_PARENTS = text(
    """
    SELECT id FROM items p WHERE p.project_id = :project_id
      AND EXISTS (SELECT 1 FROM items c WHERE c.parent_id = p.id)
    ORDER BY id FOR NO KEY UPDATE
    """
)
_RECOUNT = text(
    """
    UPDATE items p SET open_subtasks = CASE WHEN :required THEN
        (SELECT count(*) FROM items c WHERE c.parent_id = p.id AND c.completed_at IS NULL AND c.gold_seq IS NULL)
        ELSE 0 END
    WHERE p.id = ANY(:ids)
    """
)


async def apply_gate(session: AsyncSession, project: Project, gate: str) -> None:
    """A project's `subtasks_gate` changed: recount every parent (the caller holds the project lock and
    has started a queue epoch whose raters rewind from the start)."""
    ids = list(await session.scalars(_LOCK_PARENTS, {"project_id": project.id}))
    if ids:
        await session.execute(_RECOUNT, {"required": gate == SubtasksGate.required, "ids": ids})


# The submit that completes a subtask: its parent waits for one fewer (never below 0: a gate switched
# to optional meanwhile set it to 0).
_PARENT_DONE = text(
    "UPDATE items SET open_subtasks = greatest(open_subtasks - 1, 0) WHERE id = :id AND open_subtasks > 0"
)


async def subtask_completed(session: AsyncSession, parent_id: uuid.UUID) -> None:
    """A subtask completed in this transaction; its parent's row is already locked (id order)."""
    await session.execute(_PARENT_DONE, {"id": parent_id})


async def gold_changed(session: AsyncSession, project: Project, subtask: Item, *, gold: bool) -> None:
    """A subtask not complete became gold (its parent waits for it no more) or ordinary again (its
    parent waits for it, as the gate's recount would say). Both rows are locked by the caller, in id order."""
    if subtask.parent_id is None or subtask.completed_at is not None:
        return
    if gold:
        await session.execute(_PARENT_DONE, {"id": subtask.parent_id})
    elif project.subtasks_gate == SubtasksGate.required:
        await session.execute(
            text("UPDATE items SET open_subtasks = open_subtasks + 1 WHERE id = :id"), {"id": subtask.parent_id}
        )


# --- answers -------------------------------------------------------------------------------------


def check_answer(item: Item, answer: Any) -> Any:
    """The answer a judgment of this subtask stores, or a refusal with a sentence."""
    if item.kind == "comparison":
        if answer is not None:
            raise Invalid("answer belongs to a check, a rating or an answer subtask; this item is a comparison.")
        return None
    if answer is None:
        raise Invalid(f"answer is missing; this item is a {item.kind}: {_expected(item)}.")
    if item.kind == "check":
        if answer not in ANSWERS:
            raise Invalid(f"answer must be yes, no or unsure for a check, got {str(answer)[:40]!r}.")
        return answer
    if item.kind == "rating":
        if isinstance(answer, bool) or not isinstance(answer, int | float):
            raise Invalid(f"answer must be a number for a rating: {_expected(item)}.")
        assert item.scale_min is not None
        assert item.scale_max is not None
        if not item.scale_min <= answer <= item.scale_max:
            raise Invalid(f"answer {answer} is outside the scale: {_expected(item)}.")
        return answer
    if not isinstance(answer, str) or not answer.strip():
        raise Invalid("answer must be a non-empty text for an answer subtask.")
    if len(answer) > MAX_ANSWER_CHARS:
        raise Invalid(f"answer is {len(answer):,} characters long; at most {MAX_ANSWER_CHARS:,} are allowed.")
    if "\x00" in answer:
        raise Invalid("answer contains a NUL character (\\u0000), which cannot be stored; remove it.")
    return answer.strip()


def _number(value: float | None) -> str:
    return "" if value is None else (str(int(value)) if float(value).is_integer() else str(value))


def _expected(item: Item) -> str:
    if item.kind == "check":
        return "yes, no or unsure"
    if item.kind == "rating":
        return f"a number from {_number(item.scale_min)} to {_number(item.scale_max)}"
    return f"a text of at most {MAX_ANSWER_CHARS:,} characters"


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """A subtask's aggregated answer: the answer raters gave most (a rating: the median), and the
    share of its counted answers that agree with it (a rating: within a tenth of the scale)."""

    answer: Any
    agreement: float | None
    count: int


def aggregate(kind: str, answers: Sequence[Any], scale: tuple[float | None, float | None] = (None, None)) -> Result:
    if not answers:
        return Result(None, None, 0)
    if kind == "rating":
        median: float | int = statistics.median(float(a) for a in answers)
        median = int(median) if float(median).is_integer() else median
        low, high = scale
        width = (high - low) / 10 if low is not None and high is not None else 0.0
        close = sum(1 for a in answers if abs(float(a) - median) <= width)
        return Result(median, round(close / len(answers), 3), len(answers))
    keys = [str(a).strip().lower() if kind == "answer" else str(a) for a in answers]
    top, n = Counter(keys).most_common(1)[0]
    shown = next(a for a, k in zip(answers, keys, strict=True) if k == top)
    return Result(shown, round(n / len(answers), 3), len(answers))


@dataclass(frozen=True, slots=True)
class SubtaskResult:
    item: Item
    result: Result
    rationales: list[str]
    candidate_id: uuid.UUID | None
    span: list[int] | None
    chosen_id: uuid.UUID | None  # a comparison: the candidate chosen most


async def results(
    session: AsyncSession, parent_id: uuid.UUID, *, limit: int = parse.MAX_SUBTASKS
) -> list[SubtaskResult]:
    """The direct subtasks of an item with their counted answers aggregated (what its rater is shown)."""
    items = list(await session.scalars(select(Item).where(Item.parent_id == parent_id).order_by(Item.seq).limit(limit)))
    if not items:
        return []
    by_item: dict[uuid.UUID, list[Judgment]] = defaultdict(list)
    judgments = await session.scalars(
        select(Judgment)
        .where(Judgment.item_id.in_([i.id for i in items]), Judgment.surplus.is_(False))
        .order_by(Judgment.seq)
    )
    for j in judgments:
        by_item[j.item_id].append(j)
    out = []
    for item in items:
        js = by_item.get(item.id, [])
        chosen = None
        if item.kind == "comparison":
            result = aggregate("comparison", [str(j.choice_id) for j in js if j.choice_id is not None])
            chosen = uuid.UUID(result.answer) if result.answer else None
            result = Result(None, result.agreement, result.count)
        else:
            result = aggregate(
                item.kind, [j.answer for j in js if j.answer is not None], (item.scale_min, item.scale_max)
            )
        span = [item.span_start, item.span_end] if item.span_start is not None and item.span_end is not None else None
        out.append(
            SubtaskResult(
                item=item,
                result=result,
                rationales=[j.rationale for j in js if j.rationale][:10],
                candidate_id=item.subtask_candidate_id,
                span=span,
                chosen_id=chosen,
            )
        )
    return out
