"""Fault tests: real server processes (tests/security/server.py) on the run's database, and clients
that record what they were told."""

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.security.server import ServerProcess, start_server

# The sentences and Retry-After a client gets when the database cannot be reached (server/errors.py),
# written out here so that a test fails when they change.
DATABASE_DOWN = "The database is not answering at the moment; please try again in a few seconds."
POOL_BUSY = "The server is too busy to reach the database at the moment; please try again in a few seconds."
RETRY_AFTER = "5"
UNAVAILABLE_TITLE = "Please try again in a moment"

SLOT_ID = re.compile(r'<section class="slot item" id="a-([0-9a-f-]+)"')
FIRST_CHOICE = re.compile(r'name="verdict" value="c:([0-9a-f-]+):')


def page_slots(html: str) -> list[tuple[str, str]]:
    """(assignment id, first candidate id) of each item slot in a rater page answer."""
    parts = SLOT_ID.split(html)[1:]
    return [(parts[i], m.group(1)) for i in range(0, len(parts), 2) if (m := FIRST_CHOICE.search(parts[i + 1]))]


@pytest.fixture
def launch(database_url: str, tmp_path: Path) -> Iterator[Callable[[int], list[ServerProcess]]]:
    """Start n server processes on the test database, each logging to a file in tmp_path; all are
    stopped afterwards (those still running)."""
    started: list[ServerProcess] = []

    def start(n: int) -> list[ServerProcess]:
        env = {"ASSAY_DB_POOL_SIZE": "5", "ASSAY_DB_MAX_OVERFLOW": "5"}
        first = len(started)
        with ThreadPoolExecutor(n) as pool:  # in parallel: each takes seconds to import and start
            new = list(
                pool.map(
                    lambda k: start_server(database_url, env=env, log_file=tmp_path / f"server-{k}.log"),
                    range(first, first + n),
                )
            )
        started.extend(new)
        return new

    try:
        yield start
    finally:
        for server in started:
            if server.process.poll() is None:
                server.stop()
