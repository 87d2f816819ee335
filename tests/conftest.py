"""Shared fixtures: the local stack (devstack.stack), started once per xdist worker.

Fixtures (all give a :class:`devstack.state.StackInfo`; see its fields for ports and paths):

``stack`` (session)
    The full stack WITH every function process (functions-framework, one per function in
    shared.topology.FUNCTIONS), push subscriptions, relay, Box, SFTP, bqemulator, webhook sink.
    For end-to-end tests: publish on ``export-requests`` and watch results. Startup fails
    (with the function's log tail) while a function cannot be imported.
``bare_stack`` (session)
    The same components WITHOUT function processes (no push subscriptions either): for tests
    of one component or of shared/ code run in the test process (destinations, GCS, BigQuery).
``stack_env`` / ``bare_stack_env`` (function)
    Put ``stack.env`` / ``bare_stack.env`` (PUBSUB_EMULATOR_HOST, STORAGE_EMULATOR_HOST,
    OFFSITE_CONFIG, OFFSITE_BIGQUERY_ENDPOINT, …) into os.environ for one test and reset the
    cached clients of shared.gcp.clients before and after. Yields the StackInfo.
``stack_factory`` (function)
    ``stack_factory(**start_stack_kwargs) -> StackInfo``: a private stack in a fresh directory,
    stopped after the test: for tests that need their own relay targets, config overlay,
    SFTP backend or components (keyword arguments of devstack.stack.start_stack).

Both session stacks share nothing between workers: each has its own directory and free
ports. Everything is stopped (by pid, with child processes) when the session ends. Stack roots
are made with tempfile under /tmp, not pytest's tmp_path: the SFTP account offsite-sftp must
be able to enter them, and pytest's base directory is private (0700).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.errors import StackError
from devstack.stack import StackInfo, start_stack, stop_stack


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def stack_root_factory() -> Iterator[Callable[[str], Path]]:
    """Fresh directories for stacks, removed at the end of the session."""
    made: list[Path] = []

    def make(label: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"offsite-{label}-{_worker()}-"))
        path.chmod(0o755)
        made.append(path)
        return path

    yield make
    for path in made:
        stop_stack(path)  # no-op when already stopped
        shutil.rmtree(path, ignore_errors=True)


def _start(root: Path, **kwargs: Any) -> StackInfo:
    """start_stack, with the dead component's log tail in the failure (the directory is removed later)."""
    try:
        return start_stack(root, **kwargs)
    except StackError as exc:
        pytest.fail(f"local stack did not start: {exc}\n{exc.log_tail}", pytrace=False)


def _print_function_logs(info: StackInfo, lines: int = 40) -> None:
    """After a failed session, show what the functions said (the stack directory is removed)."""
    for comp in info.components:
        if comp.name in info.functions and comp.log and Path(comp.log).exists():
            tail = Path(comp.log).read_text(errors="replace").splitlines()[-lines:]
            print(f"\n--- {comp.name} log tail ({info.root}) ---", *tail, sep="\n", file=sys.stderr)


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, stack_root_factory: Callable[[str], Path]) -> Iterator[StackInfo]:
    root = stack_root_factory("stack")
    info = _start(root, functions=True)
    yield info
    if request.session.testsfailed:
        _print_function_logs(info)
    stop_stack(root)


@pytest.fixture(scope="session")
def bare_stack(stack_root_factory: Callable[[str], Path]) -> Iterator[StackInfo]:
    root = stack_root_factory("bare")
    info = _start(root, functions=False)
    yield info
    stop_stack(root)


def _reset_process_caches() -> None:
    """Cached clients and the cached config belong to whichever stack was current: drop both."""
    from shared import runtime
    from shared.gcp import clients

    clients.reset()
    runtime.reset()


def _apply_env(monkeypatch: pytest.MonkeyPatch, info: StackInfo) -> None:
    for key, value in info.env.items():
        monkeypatch.setenv(key, value)
    _reset_process_caches()


@pytest.fixture
def stack_env(stack: StackInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackInfo]:
    _apply_env(monkeypatch, stack)
    yield stack
    _reset_process_caches()


@pytest.fixture
def bare_stack_env(bare_stack: StackInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackInfo]:
    _apply_env(monkeypatch, bare_stack)
    yield bare_stack
    _reset_process_caches()


@pytest.fixture
def stack_factory(stack_root_factory: Callable[[str], Path]) -> Iterator[Callable[..., StackInfo]]:
    roots: list[Path] = []

    def start(**kwargs: Any) -> StackInfo:
        root = stack_root_factory("private")
        roots.append(root)
        return _start(root, **kwargs)

    yield start
    for root in roots:
        stop_stack(root)
