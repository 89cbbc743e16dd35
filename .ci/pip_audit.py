"""pip-audit on the installed dependencies, run by .ci/run.

Fails (exit 1) on a known vulnerability that has a fixed version. When no vulnerability
service answers (pip-audit asks PyPI's per-release JSON API, or OSV), it prints
"skipped: no vulnerability service" and exits 0: never a pass. pip-audit itself would report
every package as "not found on PyPI" there and exit 0, which reads like a clean result.
"""

import importlib.metadata
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

SKIPPED = "pip-audit: skipped: no vulnerability service"
PROBE_TIMEOUT = 10


def _pypi_answers() -> bool:
    """PyPI's JSON API for one release, as pip-audit's default service asks it."""
    version = importlib.metadata.version("pip")
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/pip/{version}/json", timeout=PROBE_TIMEOUT) as reply:
            return "vulnerabilities" in json.load(reply)
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors
        return False


def _osv_answers() -> bool:
    query = json.dumps({"package": {"name": "jinja2", "ecosystem": "PyPI"}, "version": "2.4.1"}).encode()
    request = urllib.request.Request(
        "https://api.osv.dev/v1/query", data=query, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as reply:
            return "vulns" in json.load(reply)
    except (OSError, ValueError):
        return False


SERVICES: dict[str, Callable[[], bool]] = {"pypi": _pypi_answers, "osv": _osv_answers}


def reachable_service() -> str | None:
    return next((name for name, answers in SERVICES.items() if answers()), None)


def run_pip_audit(service: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off"]
    command += ["--vulnerability-service", service, "--format", "json"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1):  # 1: vulnerabilities found; anything else: pip-audit failed
        raise SystemExit(f"pip-audit failed ({result.returncode}): {result.stderr.strip()}")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def judge(report: dict[str, Any], service: str) -> tuple[int, list[str]]:
    """Exit code and lines to print: 1 when a vulnerability has a fix, else 0."""
    audited = [d for d in report["dependencies"] if "skip_reason" not in d]
    skipped = sorted(d["name"] for d in report["dependencies"] if "skip_reason" in d)
    if not audited:
        return 0, [f"{SKIPPED} ({service} could not look up any package)"]
    lines, fixable = [], 0
    for dependency in audited:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln["fix_versions"])
            fixable += bool(fixes)
            fix = f"fixed in {fixes}" if fixes else "no fix released"
            lines.append(f"  {dependency['name']} {dependency['version']}: {vuln['id']} ({fix})")
    summary = f"pip-audit ({service}): {len(audited)} packages audited, {fixable} vulnerabilities with a fix"
    if skipped:
        summary += f"; not audited: {', '.join(skipped)}"
    return (1 if fixable else 0), [summary, *lines]


def main() -> int:
    service = reachable_service()
    if service is None:
        print(f"{SKIPPED} (neither PyPI's per-release JSON API nor OSV answers)")  # noqa: T201
        return 0
    code, lines = judge(run_pip_audit(service), service)
    print("\n".join(lines))  # noqa: T201
    return code


if __name__ == "__main__":
    sys.exit(main())
