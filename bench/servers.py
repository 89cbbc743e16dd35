"""Start, wait for and stop uvicorn server processes; sample their memory and CPU."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EVERY_S = 0.02  # 20 ms: short enough to catch a brief allocation spike during a request
STOP_GRACE_S = 10.0


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it; loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, pool_size: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        ASSAY_ENVIRONMENT="test",
        ASSAY_DB_POOL_SIZE=str(pool_size),
        # No overflow: the pool size alone then bounds connections, so N processes fit max_connections.
        ASSAY_DB_MAX_OVERFLOW="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def spawn(port: int, env: dict[str, str], log_path: Path, *, python: str = sys.executable, cwd: Path = ROOT) -> Server:
    """One uvicorn process of the tree at `cwd` (bench/requests.py's --pair starts another commit's)."""
    command = [
        python,
        "-m",
        "uvicorn",
        "server.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(port=port, process=process, log_path=log_path)


def start_servers(count: int, *, database_url: str, pool_size: int, log_dir: Path) -> list[Server]:
    log_dir.mkdir(parents=True, exist_ok=True)
    env = server_env(database_url, pool_size)
    servers: list[Server] = []
    try:
        for _ in range(count):
            port = free_port()
            servers.append(spawn(port, env, log_dir / f"server-{count}x-{port}.log"))
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def wait_healthy(servers: Sequence[Server], timeout_s: float = 60.0) -> None:
    """Block until every server answers GET /healthz; raise with its log tail if one dies or stalls."""
    deadline = time.monotonic() + timeout_s
    pending = list(servers)
    with httpx.Client(timeout=2.0) as client:
        while pending:
            server = pending[0]
            if server.process.poll() is not None:
                raise RuntimeError(f"server on port {server.port} exited:\n{log_tail(server)}")
            try:
                if client.get(f"{server.url}/healthz").status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server on port {server.port} not healthy after {timeout_s:.0f} s:\n{log_tail(server)}"
                )
            time.sleep(0.1)


def log_tail(server: Server, lines: int = 30) -> str:
    try:
        return "\n".join(server.log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_servers(servers: Sequence[Server]) -> None:
    """SIGTERM each server by its PID, then SIGKILL whatever is still alive after the grace period."""
    for server in servers:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for server in servers:
        try:
            server.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)


@contextmanager
def running_servers(count: int, *, database_url: str, pool_size: int, log_dir: Path) -> Iterator[list[Server]]:
    servers = start_servers(count, database_url=database_url, pool_size=pool_size, log_dir=log_dir)
    try:
        wait_healthy(servers)
        yield servers
    finally:
        stop_servers(servers)


def _tree_rss(process: psutil.Process) -> int:
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with suppress(psutil.Error):  # a child may exit between listing and reading
            total += child.memory_info().rss
    return int(total)


@dataclass
class RssSampler:
    """Samples one process tree's RSS every 20 ms in a thread, as a context manager."""

    pid: int
    limit_bytes: int | None = None  # `exceeded` is set once the tree grows past this
    samples: list[int] = field(default_factory=list)
    exceeded: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "RssSampler":
        process = psutil.Process(self.pid)
        self.samples.append(_tree_rss(process))
        self._thread = threading.Thread(target=self._run, args=(process,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self, process: psutil.Process) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            try:
                rss = _tree_rss(process)
            except psutil.Error:
                return
            self.samples.append(rss)
            if self.limit_bytes is not None and rss > self.limit_bytes:
                self.exceeded.set()

    @property
    def before_mb(self) -> float:
        return self.samples[0] / 2**20

    @property
    def peak_mb(self) -> float:
        return max(self.samples) / 2**20


def _cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            seconds[pid] = times.user + times.system
        except psutil.Error:
            pass
    return seconds


# PostgreSQL's own processes by their title ("postgres: checkpointer", ...); every other child of the
# postmaster is a backend serving a connection.
_BACKGROUND = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum",
    "logical replication",
    "archiver",
    "stats collector",
    "walsender",
    "walreceiver",
)


def _postgres_cpu(postmaster_pid: int | None) -> dict[int, tuple[float, bool]]:
    """CPU seconds of the postmaster and each of its children, and whether it serves a connection.
    The postmaster's own figure includes the children that have exited (their time is added to the
    parent's when it reaps them: autovacuum workers, closed connections), counted as background."""
    if postmaster_pid is None:
        return {}
    try:
        postmaster = psutil.Process(postmaster_pid)
        times = postmaster.cpu_times()
        seconds = {postmaster_pid: (times.user + times.system + times.children_user + times.children_system, False)}
        children = postmaster.children()
    except psutil.Error:
        return {}
    for child in children:
        try:
            times = child.cpu_times()
            title = " ".join(child.cmdline())
        except psutil.Error:
            continue  # exited between listing and reading: counted in the postmaster's figure once reaped
        seconds[child.pid] = (times.user + times.system, not any(name in title for name in _BACKGROUND))
    return seconds


@dataclass
class CpuMeter:
    """CPU seconds used by the servers, by PostgreSQL (its backends, and its background processes:
    autovacuum, checkpointer, WAL writer...), and by the whole machine during a phase."""

    server_pids: list[int]
    postmaster_pid: int | None
    _servers: dict[int, float] = field(default_factory=dict)
    _postgres: dict[int, tuple[float, bool]] = field(default_factory=dict)
    _machine: tuple[float, float] = (0.0, 0.0)
    _started: float = 0.0
    result: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> "CpuMeter":
        self._servers = _cpu_seconds(self.server_pids)
        self._postgres = _postgres_cpu(self.postmaster_pid)
        self._machine = _machine_times()
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        servers = _cpu_seconds(self.server_pids)
        # Processes that started during the phase count from zero; ones that exited during it are in
        # the postmaster's figure (their whole life, when they started before the phase: rare, pooled).
        postgres = _postgres_cpu(self.postmaster_pid)
        busy, total = _machine_times()
        used = {pid: (v - self._postgres.get(pid, (0.0, False))[0], backend) for pid, (v, backend) in postgres.items()}
        self.result = {
            "server_cpu_s": sum(v - self._servers.get(k, 0.0) for k, v in servers.items()),
            "postgres_cpu_s": sum(v for v, _ in used.values()),
            "postgres_backend_cpu_s": sum(v for v, backend in used.values() if backend),
            "machine_busy_pct": 100.0 * (busy - self._machine[0]) / max(1e-9, total - self._machine[1]),
            "machine_busy_cpu_s": busy - self._machine[0],
            "seconds": time.monotonic() - self._started,
        }


def _machine_times() -> tuple[float, float]:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    return total - idle, total
