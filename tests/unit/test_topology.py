from __future__ import annotations

import re
from pathlib import Path

from shared import topology

ROOT = Path(__file__).resolve().parents[2]


def test_every_function_has_a_main_with_its_entry_point() -> None:
    for fn in topology.FUNCTIONS:
        main = (ROOT / "functions" / fn.source / "main.py").read_text()
        assert re.search(rf"^def {fn.entry_point}\(", main, re.M), fn.name


def test_subscription_and_dead_letter_names_are_valid_and_unique() -> None:
    subs = topology.subscriptions()
    names = [s.name for s in subs] + [s.dead_letter_topic for s in subs]
    assert len(names) == len(set(names))
    for name in names + list(topology.TOPICS):
        # Pub/Sub: 3-255 chars, starts with a letter
        assert re.match(r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", name), name


def test_verify_listens_to_receipts_requests_manifests_and_mirror_reconciles() -> None:
    verify = topology.function("verify")
    assert {t.name for t in verify.triggers} == {"deliveries", "verify-requests", "gcs-finalized", "mirror-reconciles"}
