"""The HH-RLHF sample the above-the-fold test needs: missing in CI is a failure, elsewhere a skip with the reason."""

import gzip
from pathlib import Path

import pytest

from tests.web import fold


def test_missing_sample_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fold, "HH_FILE", tmp_path / "missing.jsonl.gz")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI must have it"):
        fold.hh_sample(1)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="the HH-RLHF sample is not at"):
        fold.hh_sample(1)


def test_sample_rows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "sample.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(b'{"n": %d}\n' % i for i in range(5))))
    monkeypatch.setattr(fold, "HH_FILE", path)
    assert fold.hh_sample(3) == b'{"n": 0}\n{"n": 1}\n{"n": 2}\n'
