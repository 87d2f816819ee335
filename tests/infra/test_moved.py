"""`moved` blocks: resources folded into a for_each keep their deployed objects.

Terraform applies a move only when its target exists in the new configuration; a target that
is misspelt (or a key the for_each does not produce) would plan a destroy and a create instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.hcl_eval import EvalError, Module


def test_every_move_lands_on_an_instance_infra_creates(example: Module) -> None:
    moves = dict(example.moves())
    assert moves[("google_storage_bucket", "exports")] == ("google_storage_bucket", "data", "exports")
    assert moves[("google_storage_bucket", "state")] == ("google_storage_bucket", "data", "state")
    assert moves[("google_storage_bucket", "sources")] == ("google_storage_bucket", "data", "sources")
    for name in ("dead_letters", "incomplete_runs"):
        policy = ("google_monitoring_alert_policy", name)
        assert moves[policy] == ("google_monitoring_alert_policy", "above_zero", name)
    assert moves[("google_pubsub_topic_iam_member", "mirror_redelivery", 0)] == (
        "google_pubsub_topic_iam_member",
        "mirror_publisher",
        "delivery-continuations",
    )
    assert len(set(moves.values())) == len(moves), "two moves onto one instance"


def _module(tmp_path: Path, text: str) -> Module:
    (tmp_path / "main.tf").write_text(text)
    return Module(tmp_path)


_BUCKETS = """
resource "google_storage_bucket" "data" {
  for_each = { a = 1 }
  name     = each.key
}
"""


def test_a_move_onto_a_key_the_for_each_does_not_produce_is_an_error(tmp_path: Path) -> None:
    module = _module(
        tmp_path, _BUCKETS + 'moved {\n  from = google_storage_bucket.b\n  to = google_storage_bucket.data["b"]\n}\n'
    )
    with pytest.raises(EvalError, match="no such instance"):
        module.moves()


def test_a_move_from_a_resource_still_declared_is_an_error(tmp_path: Path) -> None:
    module = _module(
        tmp_path, _BUCKETS + 'moved {\n  from = google_storage_bucket.data\n  to = google_storage_bucket.data["a"]\n}\n'
    )
    with pytest.raises(EvalError, match="still exists"):
        module.moves()
    ok = _module(
        tmp_path, _BUCKETS + 'moved {\n  from = google_storage_bucket.a\n  to = google_storage_bucket.data["a"]\n}\n'
    )
    assert ok.moves() == [(("google_storage_bucket", "a"), ("google_storage_bucket", "data", "a"))]
