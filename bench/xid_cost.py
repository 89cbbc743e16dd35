"""What stamping a row through assay_xid() costs against the bare transaction id it replaced.

    .venv/bin/python -m bench.xid_cost --database postgresql://postgres@127.0.0.1:5432/DB

The database must be migrated (`assay migrate`). Each expression is evaluated `--rows` times in
one statement, `--repeats` times; the median time per evaluation is printed. A judgment is stamped
once per submit, so the difference is what each submit pays.
"""

import argparse
import asyncio
import statistics
import time

import asyncpg

EXPRESSIONS = {
    "bare pg_current_xact_id()": "(pg_current_xact_id()::text)::bigint",
    "assay_xid() (offset as a constant)": "assay_xid()",
    "a function reading assay_meta": "pg_temp.xid_from_meta()",  # the design this replaced
}
_FROM_META = """
    CREATE FUNCTION pg_temp.xid_from_meta() RETURNS bigint LANGUAGE sql VOLATILE AS $$
        SELECT (pg_current_xact_id()::text)::bigint + coalesce((SELECT xid_offset FROM assay_meta WHERE id), 0)
    $$"""


async def main(url: str, rows: int, repeats: int) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(_FROM_META)
        for label, expression in EXPRESSIONS.items():
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                await connection.fetchval(f"SELECT count({expression}) FROM generate_series(1, $1)", rows)
                timings.append((time.perf_counter() - started) / rows)
            print(f"{label:32} {statistics.median(timings) * 1e9:8.0f} ns per stamp")
    finally:
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.database, arguments.rows, arguments.repeats))
