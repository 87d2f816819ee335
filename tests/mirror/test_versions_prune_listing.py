"""Retention of a mirrored bucket's versions lists the destination for paths and sizes only:
an SFTP partner with ``hashing`` set is not asked to hash every kept version."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import yaml

from shared import runtime
from shared.retention.prune import prune
from tests.mirror.conftest import MirrorStack
from tests.mirror.test_versions_prune import DAYS, _actions, _with_versions


def _partner_hashing(method: str) -> None:
    path = Path(os.environ["OFFSITE_CONFIG"])
    raw = yaml.safe_load(path.read_text())
    raw["destinations"]["sftp"]["local"]["hashing"] = method
    path.write_text(yaml.safe_dump(raw))
    runtime.reset()


def test_versions_listing_asks_no_server_hash(mirror_factory: Callable[..., MirrorStack]) -> None:
    """The stack's SFTP server offers no server-side hash: a listing that asked for one would fail
    (PermanentError naming the ``hashing`` switch)."""
    m = mirror_factory(delete="mirror", retention={"daily": 5}, destinations=["sftp:local"])
    _with_versions(m)
    _partner_hashing("check-file")
    try:
        dry = prune(m.config, dry_run=True, bucket=m.bucket)
    finally:
        _partner_hashing("none")
    assert _actions(dry.outcomes, "sftp:local") == {**dict.fromkeys(DAYS[:5], "keep"), DAYS[5]: "protect"}
