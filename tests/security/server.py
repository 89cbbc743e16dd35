"""A real server process: the app under uvicorn in a child process, as `assay serve` runs it.

Tests that measure its memory: the process's peak resident memory (`VmHWM`) is reset before each
request under test (Linux: `clear_refs` 5), so `peak_growth()` is what that one request made the
server hold at its worst, in its own process, free of the test runner's allocations. The fault
tests (`tests/faults/`) start several on one database, read their logs (`log_file`) and `kill()`
one with SIGKILL.
"""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

MB = 1 << 20
_LAUNCH = (
    "import logging, sys, uvicorn; from server.app import create_app; "
    "sys.argv[3:] and logging.basicConfig(level=sys.argv[3], stream=sys.stderr); "
    "uvicorn.run(create_app(database_url=sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]), log_level='error')"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _status(pid: int, field: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_file: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return _status(self.pid, "VmRSS")

    def start_measuring(self) -> int:
        """Reset the peak to the current resident size and return that size."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self.rss()

    def peak_growth(self, baseline: int) -> int:
        return _status(self.pid, "VmHWM") - baseline

    def log(self) -> str:
        """What the server logged so far (start it with `log_file`)."""
        assert self.log_file is not None, "start the server with log_file= to read its log"
        return self.log_file.read_text()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no rollback from our side; the database sees the connections drop."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(
    database_url: str,
    *,
    code_dir: Path | None = None,
    env: dict[str, str] | None = None,
    log_file: Path | None = None,
) -> ServerProcess:
    """Start the app (from `code_dir`, default this checkout) on a free port and wait until it answers.

    With `log_file`, the server's log records from INFO up go there (otherwise to the test's stderr)."""
    port = _free_port()
    environment = {**os.environ, "ASSAY_ENVIRONMENT": "test", **(env or {})}
    if code_dir is not None:
        environment["PYTHONPATH"] = str(code_dir)
    arguments = [sys.executable, "-c", _LAUNCH, database_url, str(port), *(["INFO"] if log_file else [])]
    stderr = log_file.open("ab") if log_file else None
    try:
        process = subprocess.Popen(arguments, cwd=code_dir, env=environment, stdout=subprocess.DEVNULL, stderr=stderr)
    finally:
        if stderr is not None:
            stderr.close()
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_file)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("the server did not answer /healthz within 60 s")
