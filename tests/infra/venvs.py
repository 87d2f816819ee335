"""Throw-away virtualenvs for the infra tests, built once and cached by what they contain.

A venv is keyed by the sha256 of its requirements and the interpreter version and built
under an exclusive file lock, with a marker written last, so parallel pytest workers (and
parallel test sessions in the same tree) never use a half-built one. They live
in .offsite/venvs/ (git-ignored); pip's own download cache is used, so a fresh clone on the
same machine does not download again. Delete the folder to rebuild from scratch.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".offsite" / "venvs"
PIP_TIMEOUT_S = 900


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def cached_venv(label: str, requirements: str) -> Path:
    """A venv with exactly ``requirements`` (requirements.txt text) installed from PyPI."""
    key = hashlib.sha256(f"{sys.version}\n{requirements}".encode()).hexdigest()[:16]
    target = CACHE / f"{label}-{key}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{label}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").is_file():
            return target
        # Built in place under the lock (a venv's scripts carry its absolute path); a folder
        # without .complete is a build that was interrupted and is started over.
        shutil.rmtree(target, ignore_errors=True)
        # The base interpreter, not this venv's: the new venv must not see our site-packages.
        subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, capture_output=True, text=True)
        req_file = target / "requirements.txt"
        req_file.write_text(requirements)
        result = subprocess.run(
            [
                str(venv_python(target)),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "-r",
                str(req_file),
            ],
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(f"pip install for {label} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        (target / ".complete").write_text(key)
    _prune(label, keep=target)
    return target


def _prune(label: str, keep: Path) -> None:
    """Remove this label's venvs for older requirements, unless someone holds their lock."""
    for lock_path in CACHE.glob(f"{label}-*.lock"):
        venv = lock_path.with_suffix("")
        if venv == keep or not venv.name.removeprefix(f"{label}-").isalnum():
            continue
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(venv, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
