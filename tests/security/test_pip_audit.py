"""The pip-audit step of .ci/run: fails on a vulnerability with a fix; without a reachable
vulnerability service it says it skipped, never that it passed."""

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent.parent / ".ci" / "pip_audit.py"


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_pip_audit", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dependency(name: str, *vulns: tuple[str, list[str]]) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0",
        "vulns": [{"id": vid, "fix_versions": fixes, "aliases": [], "description": ""} for vid, fixes in vulns],
    }


def test_no_service_is_a_skip_never_a_pass(
    audit: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(audit, "SERVICES", {"pypi": lambda: False, "osv": lambda: False})
    monkeypatch.setattr(audit, "run_pip_audit", lambda service: pytest.fail("pip-audit ran without a service"))
    assert audit.main() == 0
    output = capsys.readouterr().out
    assert output.startswith("pip-audit: skipped: no vulnerability service")
    assert "audited" not in output


def test_a_vulnerability_with_a_fix_fails(audit: ModuleType) -> None:
    report = {"dependencies": [dependency("jinja2", ("PYSEC-1", ["3.1.5"])), dependency("orjson")]}
    code, lines = audit.judge(report, "osv")
    assert code == 1
    assert lines == [
        "pip-audit (osv): 2 packages audited, 1 vulnerabilities with a fix",
        "  jinja2 1.0: PYSEC-1 (fixed in 3.1.5)",
    ]


def test_a_vulnerability_without_a_fix_is_shown_but_passes(audit: ModuleType) -> None:
    code, lines = audit.judge({"dependencies": [dependency("x", ("GHSA-2", []))]}, "pypi")
    assert code == 0
    assert lines[1] == "  x 1.0: GHSA-2 (no fix released)"


def test_packages_the_service_could_not_look_up_are_named(audit: ModuleType) -> None:
    report = {"dependencies": [dependency("a"), {"name": "b", "skip_reason": "Dependency not found on PyPI"}]}
    code, lines = audit.judge(report, "pypi")
    assert (code, lines) == (0, ["pip-audit (pypi): 1 packages audited, 0 vulnerabilities with a fix; not audited: b"])


def test_a_service_that_finds_nothing_at_all_is_a_skip(audit: ModuleType) -> None:
    """As on a mirror that serves packages but not PyPI's per-release JSON: every lookup fails."""
    report = {"dependencies": [{"name": n, "skip_reason": "Dependency not found on PyPI"} for n in ("a", "b")]}
    code, lines = audit.judge(report, "pypi")
    assert code == 0
    assert lines == ["pip-audit: skipped: no vulnerability service (pypi could not look up any package)"]
