"""The upload abuse corpus: small files that expand to far more, and files that are simply wrong.

`tests/security/test_upload_abuse.py` sends each to a real server process and checks the answer
and the server's peak memory growth. Run as a script, it prints that growth for the code in any
checkout (the figures in the README and the issue's note come from here):

    .venv/bin/python -m tests.security.corpus --database postgresql://postgres@127.0.0.1:5432/postgres \\
        [--code /path/to/another/checkout]

The database server gets a new database for the run (migrated with this checkout's migrations,
whose extra columns have defaults, so an older checkout's server runs on it too), dropped after.
"""

import argparse
import asyncio
import gzip
import io
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from tests.security.server import MB, ServerProcess, start_server

ITEM = b'{"prompt": "Which is kinder?", "responses": [{"text": "a"}, {"text": "b"}]}\n'
RECORD_HEAD = b'{"prompt": "p", "responses": [{"text": "a"}, {"text": "b"}], "metadata": '


def _gzip_stream(parts: Iterator[bytes]) -> bytes:
    """Gzip a stream of parts without holding what they add up to."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = io.BytesIO()
    for part in parts:
        out.write(compressor.compress(part))
    out.write(compressor.flush())
    return out.getvalue()


def _repeat(unit: bytes, total: int) -> Iterator[bytes]:
    block = unit * (MB // len(unit))
    for _ in range(total // len(block)):
        yield block


def parquet_dictionary_bomb(rows: int = 4_000, value_bytes: int = 300_000) -> bytes:
    """One 300 kB string repeated in every row: dictionary-encoded and zstd-compressed, under 1 kB."""
    prompt = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["x" * value_bytes]))
    responses = pa.array([[{"text": "a"}, {"text": "b"}]] * rows, pa.list_(pa.struct([("text", pa.string())])))
    buffer = io.BytesIO()
    table = pa.Table.from_arrays([prompt, responses], names=["prompt", "responses"])
    # Without the stored Arrow schema a reader sees plain strings, as in a file any tool wrote.
    pq.write_table(table, buffer, compression="zstd", use_dictionary=True, store_schema=False)
    return buffer.getvalue()


def gzip_long_line(line_bytes: int = 150 * MB) -> bytes:
    """One JSONL line of 150 MB, gzipped to about 150 kB."""
    return _gzip_stream(iter([b'{"prompt": "', *_repeat(b"x", line_bytes), b'", "responses": []}\n']))


def gzip_csv_one_item(cell_bytes: int = 240 * MB) -> bytes:
    """A CSV whose one row holds a 240 MB quoted cell (line breaks inside), gzipped."""
    return _gzip_stream(iter([b'prompt,response_1,response_2\n"', *_repeat(b"word\n", cell_bytes), b'",a,b\n']))


def gzip_many_rows(rows: int = 1_000_000) -> bytes:
    """A million small rows (the same item, so also duplicates), gzipped to a few hundred kB."""
    return _gzip_stream(_repeat(ITEM, rows * len(ITEM)))


def deep_nesting(depth: int = 100_000) -> bytes:
    """A record whose metadata is nested 100,000 lists deep."""
    return RECORD_HEAD + b"[" * depth + b"]" * depth + b"}\n"


def nested_300() -> bytes:
    """Metadata nested 300 objects deep: past what orjson writes (255), within what it reads."""
    return RECORD_HEAD + b'{"a": ' * 300 + b"1" + b"}" * 301 + b"\n"


def wrong_encoding() -> bytes:
    """JSONL saved as UTF-16."""
    return ITEM.decode().encode("utf-16")


def nul_in_json() -> bytes:
    """A prompt holding an escaped NUL (valid JSON, not storable text)."""
    return b'{"prompt": "a\\u0000b", "responses": [{"text": "a"}, {"text": "b"}]}\n'


def nul_bytes_in_csv() -> bytes:
    return b"prompt,response_1,response_2\nQ\x00,a,b\n"


@dataclass(frozen=True)
class Abuse:
    name: str
    filename: str
    build: Callable[[], bytes]
    status: int  # the answer after the fix
    fields: dict[str, str] = field(default_factory=dict)


CORPUS = (
    Abuse("parquet dictionary bomb", "bomb.parquet", parquet_dictionary_bomb, 413),
    Abuse("gzip: one 150 MB line", "line.jsonl.gz", gzip_long_line, 413),
    Abuse("gzipped CSV: one 240 MB item", "item.csv.gz", gzip_csv_one_item, 413),
    Abuse("gzip: a million rows", "rows.jsonl.gz", gzip_many_rows, 413),
    Abuse("metadata 100,000 lists deep", "deep.jsonl", deep_nesting, 422),
    Abuse("metadata 300 objects deep", "deep300.jsonl", nested_300, 422),
    Abuse("UTF-16 JSONL", "utf16.jsonl", wrong_encoding, 422),
    Abuse("escaped NUL in a prompt", "nul.jsonl", nul_in_json, 422),
    Abuse("NUL byte in a CSV cell", "nul.csv", nul_bytes_in_csv, 422),
)


@dataclass(frozen=True)
class Measured:
    name: str
    status: int
    growth: int  # peak resident bytes above the size before the request
    seconds: float
    detail: str


def warm_up(server: ServerProcess, token: str, project_id: str) -> None:
    """Load what the first upload of each kind loads (pyarrow, the parsers), so growth is the request's own."""
    table = pa.Table.from_pylist([{"prompt": "warm", "responses": [{"text": "a"}, {"text": "b"}]}])
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    for name, content in (("w.parquet", buffer.getvalue()), ("w.jsonl.gz", gzip.compress(ITEM)), ("w.csv", b"x")):
        httpx.post(
            f"{server.url}/api/v1/projects/{project_id}/batches",
            files={"file": (name, content)},
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )


def send(server: ServerProcess, token: str, project_id: str, abuse: Abuse, content: bytes) -> Measured:
    baseline = server.start_measuring()
    started = time.perf_counter()
    response = httpx.post(
        f"{server.url}/api/v1/projects/{project_id}/batches",
        files={"file": (abuse.filename, content)},
        data=abuse.fields,
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    )
    seconds = time.perf_counter() - started
    detail = response.json().get("detail", "") if "json" in response.headers.get("content-type", "") else ""
    return Measured(abuse.name, response.status_code, server.peak_growth(baseline), seconds, str(detail))


async def _setup(url: str) -> tuple[str, str]:
    """An admin token and a project in the database at `url`."""
    from server.db import make_engine, make_sessionmaker
    from server.models import Role
    from tests.factories import create_project, create_token, create_user

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            admin = await create_user(session, role=Role.admin)
            project = await create_project(session, admin)
            return await create_token(session, admin), str(project.id)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="a PostgreSQL server URL; a database is made and dropped")
    parser.add_argument("--code", type=Path, help="the checkout whose server to measure (default: this one)")
    args = parser.parse_args()
    from sqlalchemy.engine import make_url

    from server.migrate import upgrade
    from tests.conftest import _admin_execute

    name = f"assay_corpus_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin_execute(args.database, f'CREATE DATABASE "{name}"'))
    url = make_url(args.database).set(database=name).render_as_string(hide_password=False)
    server = None
    try:
        upgrade(url)
        token, project_id = asyncio.run(_setup(url))
        server = start_server(url, code_dir=args.code)
        warm_up(server, token, project_id)
        print(f"{'abuse':32} {'status':>6} {'peak growth':>12} {'seconds':>8}  answer")  # noqa: T201
        for abuse in CORPUS:
            result = send(server, token, project_id, abuse, abuse.build())
            print(  # noqa: T201
                f"{result.name:32} {result.status:>6} {result.growth / MB:>9.0f} MB {result.seconds:>8.1f}  "
                f"{result.detail[:110]}"
            )
    finally:
        if server is not None:
            server.stop()
        asyncio.run(_admin_execute(args.database, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
