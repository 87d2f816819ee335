"""Retention lists a destination for paths and sizes only: an SFTP partner with ``hashing`` set
is not asked to hash the files of every kept run (for a big dataset that never finished
within the invocation, so nothing was ever pruned)."""

from __future__ import annotations

import datetime as dt

import yaml

from shared import runtime
from shared.retention.prune import prune
from shared.runtime import config
from tests.retention.conftest import RetentionStack, key


def _partner_hashing(rs: RetentionStack, method: str) -> None:
    raw = yaml.safe_load(rs.config_path.read_text())
    raw["destinations"]["sftp"]["local"]["hashing"] = method
    rs.config_path.write_text(yaml.safe_dump(raw))
    runtime.reset()


def test_prune_at_a_hashing_partner_lists_without_server_hashes(rstack_factory) -> None:  # type: ignore[no-untyped-def]
    """The stack's SFTP server offers no server-side hash at all: a listing that asked for one
    would fail (PermanentError naming the ``hashing`` switch), so pruning proves it never asks."""
    rs = rstack_factory(daily=1)
    old, kept = (rs.run_of(dt.date(2025, 3, day), "sftp:local") for day in (1, 2))
    _partner_hashing(rs, "check-file")
    try:
        summary = prune(config(), dataset=rs.dataset, destination="sftp:local")
    finally:
        _partner_hashing(rs, "none")
    assert sorted(o.action for o in summary.outcomes) == ["keep", "pruned"], summary.outcomes
    assert rs.remote_runs("sftp:local") == {key(kept)}, f"{key(old)} should be pruned"
