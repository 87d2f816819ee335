"""Throw-away virtualenvs for the infra tests, built once and cached by what they contain.

A venv is keyed by the sha256 of its requirements and the interpreter version and built
under an exclusive file lock, with a marker written last, so parallel pytest workers (and
parallel test sessions in the same tree) never use a half-built one. They live
in .offsite/venvs/ (git-ignored). Delete the folder to rebuild from scratch.

They are built with uv (a dev dependency), not pip: the same pinned requirements resolved the
same way, but in 2–3 s instead of 30–40 s of CPU each (pip's resolver and byte-compiling), and
the infra tests build nine of them on every fresh clone. uv's cache is shared by fresh clones on
one machine. If uv cannot install (say, a machine whose only package source is a pip config
uv does not read), the venv is built again with pip, and both errors are reported if that
fails too.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from uv import find_uv_bin

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".offsite" / "venvs"
INSTALL_TIMEOUT_S = 900


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
        failures = []
        for builder in (_build_with_uv, _build_with_pip):
            # Built in place under the lock (a venv's scripts carry its absolute path); a folder
            # without .complete is a build that was interrupted and is started over.
            shutil.rmtree(target, ignore_errors=True)
            result = builder(target, requirements)
            if result.returncode == 0:
                break
            failures.append(f"{builder.__name__}: {result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        else:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(f"installing the venv for {label} failed:\n" + "\n".join(failures))
        (target / ".complete").write_text(key)
    _prune(label, keep=target)
    return target


def _build_with_uv(target: Path, requirements: str) -> subprocess.CompletedProcess[str]:
    uv = find_uv_bin()
    # uv makes the venv from this interpreter's base: the new venv does not see our site-packages.
    made = _run([uv, "venv", "-q", "--python", sys.executable, str(target)])
    if made.returncode != 0:
        return made
    # --native-tls: trust the system's certificate store, as pip does (a proxy's CA lives there).
    install = [uv, "pip", "install", "-q", "--native-tls", "--python", str(venv_python(target))]
    return _run([*install, "-r", str(_requirements_file(target, requirements))])


def _build_with_pip(target: Path, requirements: str) -> subprocess.CompletedProcess[str]:
    # The base interpreter, not this venv's: the new venv must not see our site-packages.
    made = _run([sys.executable, "-m", "venv", str(target)])
    if made.returncode != 0:
        return made
    install = [str(venv_python(target)), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    return _run([*install, "-r", str(_requirements_file(target, requirements))])


def _requirements_file(target: Path, requirements: str) -> Path:
    req_file = target / "requirements.txt"
    req_file.write_text(requirements)
    return req_file


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)


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
