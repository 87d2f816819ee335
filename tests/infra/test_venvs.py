"""The infra tests' throw-away venvs: a requirement nobody can install is reported, not hidden."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.infra import venvs


def test_an_uninstallable_requirement_is_reported_by_both_builders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(venvs, "CACHE", tmp_path)
    with pytest.raises(RuntimeError) as raised:
        venvs.cached_venv("nothing", "offsite-no-such-distribution-7f3a==1.0\n")
    message = str(raised.value)
    assert "installing the venv for nothing failed" in message
    assert "_build_with_uv" in message and "_build_with_pip" in message
    assert message.count("offsite-no-such-distribution-7f3a") >= 2, message
    assert not any(path.is_dir() for path in tmp_path.iterdir()), "a failed build must leave no venv behind"


def test_a_built_venv_is_reused_and_sees_only_its_own_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(venvs, "CACHE", tmp_path)
    first = venvs.cached_venv("tiny", "six==1.17.0\n")
    marker = (first / ".complete").stat().st_mtime_ns
    assert venvs.cached_venv("tiny", "six==1.17.0\n") == first
    assert (first / ".complete").stat().st_mtime_ns == marker, "a complete venv must not be rebuilt"
    probe = "import importlib.util as u, six; print(six.__version__, u.find_spec('pytest') is None)"
    out = subprocess.run([str(venvs.venv_python(first)), "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1.17.0", "True"]
