"""Generated data: native JSONL items to upload, and a SQL bulk fill of judgments for the export.

Texts are slices of one seeded pseudo-random word stream: varied enough that nothing compresses
or deduplicates unrealistically, and cheap enough that 100,000 items take about a second.
"""

import random
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

PROMPT_CHARS = 200
RESPONSE_CHARS = 300
_VOCABULARY = (
    "the a model answer question because which reward policy human prefers response clear concise "
    "helpful harmless honest step first then finally however therefore example code function value "
    "table query index row column number result error reason evidence source claim summary detail"
)
WORDS = tuple(_VOCABULARY.split(" "))


def _corpus(seed: int, chars: int = 1 << 20) -> str:
    rng = random.Random(seed)
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def _snippet(corpus: str, rng: random.Random, length: int) -> str:
    start = rng.randrange(0, len(corpus) - length)
    return corpus[start : start + length]


def write_items_jsonl(path: Path, count: int, *, prefix: str, seed: int = 7) -> int:
    """Write `count` native records (prompt ~200 chars, 2 responses ~300 chars); returns the file size."""
    corpus = _corpus(seed)
    rng = random.Random(seed + 1)
    with path.open("wb") as out:
        for i in range(count):
            record = {
                "id": f"{prefix}-{i}",
                "prompt": f"Q{i}: {_snippet(corpus, rng, PROMPT_CHARS)}?",
                "responses": [{"text": _snippet(corpus, rng, RESPONSE_CHARS), "model": f"model-{c}"} for c in range(2)],
            }
            out.write(orjson.dumps(record) + b"\n")
    return path.stat().st_size


@dataclass(frozen=True)
class FillResult:
    items: int
    judgments: int
    seconds: float
    vacuum_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_BATCH = """
    INSERT INTO batches (id, project_id, name, source_format, status, priority, item_count, sha256, created_by_id)
    VALUES ($1, $2, 'bench bulk fill', 'bench/sql', 'active', 0, $3, repeat('0', 64), $4)
"""
# Every item is already complete (judged = wanted, leased = 0, completed_at set), as if raters had
# finished it, so the queue counters agree with the judgment rows written below.
_ITEMS = """
    INSERT INTO items (id, project_id, batch_id, external_id, prompt, wanted, leased, judged, completed_at)
    SELECT gen_random_uuid(), $1, $2, 'fill-' || g,
           to_jsonb(left('Q' || g || ': ' || repeat(md5(g::text) || ' ', 7), 200)),
           $3::smallint, 0, $3, now()
    FROM generate_series(1, $4::int) g
"""
_CANDIDATES = """
    INSERT INTO candidates (id, item_id, position, text, model)
    SELECT gen_random_uuid(), i.id, p, left(repeat(md5(i.external_id || p) || ' ', 10), 300), 'model-' || p
    FROM items i CROSS JOIN generate_series(0, 1) p
    WHERE i.project_id = $1
"""
# One rater's assignments and judgments per statement (and transaction), so the export also
# crosses many transaction ids, as real traffic does.
_JUDGMENTS = """
    WITH shown AS (
        SELECT c.item_id, array_agg(c.id ORDER BY c.position) AS ids
        FROM candidates c JOIN items i ON i.id = c.item_id
        WHERE i.project_id = $1
        GROUP BY c.item_id
    ), a AS (
        INSERT INTO assignments (id, project_id, item_id, rater_id, status, shown_order,
                                 leased_at, expires_at, finished_at)
        SELECT gen_random_uuid(), $1, shown.item_id, $2, 'submitted', shown.ids,
               now() - interval '2 minutes', now() + interval '13 minutes', now()
        FROM shown
        RETURNING id, item_id, shown_order
    )
    INSERT INTO judgments (id, assignment_id, project_id, item_id, rater_id, choice_id,
                           tie, both_bad, surplus, active_ms)
    SELECT gen_random_uuid(), a.id, $1, a.item_id, $2, a.shown_order[1], false, false, false, 4000
    FROM a
"""


async def fill_judgments(
    connection: asyncpg.Connection,
    *,
    project_id: str,
    admin_id: str,
    rater_ids: list[str],
    items: int,
) -> FillResult:
    """`items` complete items, each judged once by every rater in rater_ids (items * raters judgments)."""
    started = time.monotonic()
    project = uuid.UUID(project_id)
    batch = uuid.uuid4()
    async with connection.transaction():
        await connection.execute(_BATCH, batch, project, items, uuid.UUID(admin_id))
        await connection.execute(_ITEMS, project, batch, len(rater_ids), items)
        await connection.execute(_CANDIDATES, project)
    for rater in rater_ids:
        await connection.execute(_JUDGMENTS, project, uuid.UUID(rater))
    filled = time.monotonic()
    # Settle the new rows (visibility map, hint bits, planner statistics) so the export reads data
    # as it would be after weeks of labeling, not the first pass over freshly written pages.
    await connection.execute("VACUUM (ANALYZE) items, candidates, assignments, judgments")
    return FillResult(
        items=items,
        judgments=items * len(rater_ids),
        seconds=filled - started,
        vacuum_s=time.monotonic() - filled,
    )
