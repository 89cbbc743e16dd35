"""EXPLAIN ANALYZE of the rater loop's hot statements on 1k and 1M items → docs/QUERY_PLANS.md.

Run: .venv/bin/python -m bench.plans [--items 1000000]. Uses BENCH_DATABASE_URL, the server at
127.0.0.1:5432 when it answers, or the embedded PostgreSQL; works in a scratch database it drops.
"""

import argparse
import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from server.labeling.service import _PICK_AND_LEASE
from server.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent

FILL = """
WITH u AS (INSERT INTO users (id, email, name, role, kind, is_active, created_at)
           VALUES ($1::uuid, 'rater-' || $1::uuid::text || '@example.com', '', 'rater', 'human', true, now()))
INSERT INTO projects (id, name, instructions, scale, allow_tie, allow_both_bad, rationale, overlap, lease_seconds,
                      is_active, gold_rate, active_learning, assistance_policy, created_at)
VALUES ($2, 'plans', '', 'binary', false, false, 'optional', 2, 900, true, 0, false, '{}', now())
"""
FILL_ITEMS = """
WITH b AS (INSERT INTO batches (id, project_id, name, source_format, status, priority, item_count, sha256, created_at)
           VALUES (gen_random_uuid(), $1, 'plans', 'native/jsonl', 'active', 0, $2, '', now()) RETURNING id),
i AS (INSERT INTO items (id, project_id, batch_id, external_id, prompt, wanted)
      SELECT gen_random_uuid(), $1, b.id, 'x' || g, to_jsonb('prompt ' || g), 2 FROM b, generate_series(1, $2) g
      RETURNING id)
INSERT INTO candidates (id, item_id, position, text)
SELECT gen_random_uuid(), i.id, p, 'answer ' || p FROM i, generate_series(0, 1) p
"""
STATEMENTS = {
    "next: the rater's open lease": (
        "SELECT * FROM assignments WHERE rater_id = $1 AND project_id = $2 AND status = 'leased'"
        " AND expires_at > now() ORDER BY leased_at LIMIT 1"
    ),
    "next: reclaim run-out leases": (
        "UPDATE assignments SET status = 'expired' WHERE id IN (SELECT id FROM assignments WHERE project_id = $2"
        " AND status = 'leased' AND expires_at < now() ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED)"
        " RETURNING item_id"
    ),
    "next: pick and lease an item": re.sub(
        r":(\w+)",
        lambda m: {"project_id": "$2", "rater_id": "$1", "lease_seconds": "900"}[m.group(1)],
        str(_PICK_AND_LEASE.text),
    ),
    "submit: count the judgment on the item": (
        "UPDATE items SET leased = leased - 1, judged = judged + 1, completed_at = CASE WHEN judged + 1 >= wanted"
        " THEN coalesce(completed_at, now()) ELSE completed_at END WHERE id = (SELECT item_id FROM assignments"
        " WHERE rater_id = $1 AND project_id = $2 LIMIT 1)"
    ),
    "export: one pull's range": (
        "SELECT j.id FROM judgments j WHERE j.project_id = $2 AND j.xid >= 0 AND j.xid < 9223372036854775807"
        " ORDER BY j.xid, j.seq LIMIT 1000"
    ),
}


async def explain_all(url: str, n_items: int) -> str:
    conn = await asyncpg.connect(url)
    rater, project = uuid.uuid4(), uuid.uuid4()
    try:
        await conn.execute(FILL, rater, project)
        await conn.execute(
            "INSERT INTO project_members (project_id, user_id, created_at) VALUES ($1, $2, now())", project, rater
        )
        started = time.perf_counter()
        await conn.execute(FILL_ITEMS, project, n_items)
        await conn.execute("VACUUM ANALYZE")
        out = [f"## {n_items:,} items (filled in {time.perf_counter() - started:.1f} s)\n"]
        for title, sql in STATEMENTS.items():
            # Each statement runs in a transaction that is rolled back, so all see the same state.
            transaction = conn.transaction()
            await transaction.start()
            # Statements that need only the project name it $2; give them a typed $1 they ignore.
            if "$1" not in sql:
                sql = sql.replace("WHERE", "WHERE $1::uuid IS NOT NULL AND", 1)
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", rater, project)
            await transaction.rollback()
            plan = "\n".join(r[0] for r in rows)
            out.append(f"### {title}\n\n```\n{plan}\n```\n")
        return "\n".join(out)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database_at(server: str) -> AsyncIterator[str]:
    """A migrated database of its own on the benchmark server, dropped afterwards."""
    name = f"assay_plans_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn(server, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await asyncio.to_thread(upgrade, dsn(server, name))
        yield dsn(server, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def server_url() -> str:
    """BENCH_DATABASE_URL, else the server at 127.0.0.1:5432 if it answers, else the embedded one."""
    if url := os.environ.get("BENCH_DATABASE_URL"):
        return url
    local = "postgresql://postgres@127.0.0.1:5432/postgres"

    async def answers() -> None:
        await (await asyncpg.connect(local, timeout=3)).close()

    try:
        asyncio.run(answers())
        return local
    except (OSError, asyncpg.PostgresError):
        from server.pgserver import start_embedded

        return start_embedded(ROOT / ".assay" / "bench", database="postgres")


def dsn(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


async def main(url: str, sizes: list[int]) -> None:
    sections = []
    for n in sizes:
        async with scratch_database_at(url) as db:
            sections.append(await explain_all(db, n))
    header = (
        "# Query plans of the hot statements\n\nGenerated by `python -m bench.plans` "
        "(EXPLAIN ANALYZE with BUFFERS; each statement in a transaction that is rolled back).\n"
        "What to look for: the same plan shape and a handful of buffers at 1k and at 1M items.\n\n"
    )
    (ROOT / "docs" / "QUERY_PLANS.md").write_text(header + "\n".join(sections))
    print("wrote docs/QUERY_PLANS.md")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, nargs="*", default=[1_000, 1_000_000])
    asyncio.run(main(server_url(), parser.parse_args().items))
