"""A private local stack for one test module: its own directory, a config overlay (e.g. quick
redelivery), started once and stopped after the module; and a recording endpoint that always
answers 500 (a function that always fails)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.stack import start_stack, stop_stack
from devstack.state import StackInfo
from tests.stack.sink import RecordingSink

BARE = ("bigquery", "sftp", "box", "drive", "webhook")  # only Pub/Sub, GCS and the push machinery


@contextmanager
def private_stack(root_factory: Callable[[str], Path], name: str, overlay: str, **start: Any) -> Iterator[StackInfo]:
    """``start_stack(**start)`` under a fresh directory with ``overlay`` (YAML) over its config."""
    root = root_factory(name)
    overlay_path = root / "overlay.yaml"
    overlay_path.write_text(overlay)
    info = start_stack(root / "stack", config_overlay=overlay_path, **start)
    try:
        yield info
    finally:
        stop_stack(root / "stack")


@contextmanager
def failing_sink() -> Iterator[RecordingSink]:
    sink = RecordingSink(lambda path, body: 500)
    try:
        yield sink
    finally:
        sink.close()
