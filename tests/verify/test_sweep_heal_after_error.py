"""The sweep publishes ``incomplete`` announcing a self-heal, then claims the heal: a transient
error between the two (here GCS refusing the heal marker's write) must not lose the heal."""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud.storage import Blob

from shared import retry
from shared.errors import TransientError
from shared.gcp import gcs
from shared.runtime import config
from shared.verify.markers import read_state
from shared.verify.sweep import sweep
from tests.verify.conftest import SWEEP_FILES, VerifyStack, later

pytestmark = pytest.mark.stack

FILES = SWEEP_FILES
FIRST, SECOND = sorted(FILES)


class HealMarkerOutage:
    """GCS answers 503 to writes of heal markers (``…/heal-{k}.json``) until :meth:`end`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = True
        self.refused = 0
        real = Blob.upload_from_string

        def upload(blob: Blob, *args: Any, **kwargs: Any) -> Any:
            if self.down and "/heal-" in blob.name and blob.name.endswith(".json"):
                self.refused += 1
                raise gexc.ServiceUnavailable(f"{blob.name}: backendError")
            return real(blob, *args, **kwargs)

        monkeypatch.setattr(Blob, "upload_from_string", upload)

    def end(self) -> None:
        self.down = False


def test_a_heal_announced_by_incomplete_starts_after_a_transient_error(
    vstack: VerifyStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = vstack.new_run(FILES)
    vstack.receipt(vstack.deliver(run, FIRST))  # SECOND's upload never happened
    before = gcs.stat(vstack.bucket, run.folder.prefix + SECOND)
    assert before is not None
    outage = HealMarkerOutage(monkeypatch)
    with retry.waits_end_by(time.monotonic() + 2), pytest.raises(TransientError):
        sweep(config(), now=later(3))
    assert outage.refused > 0
    outage.end()
    [announced] = vstack.results_for(run)
    assert announced.status == "incomplete" and announced.heal_attempts == 1
    assert read_state(vstack.state_bucket, run.folder.prefix, "memory").heal_attempts == 0

    sweep(config(), now=later(3.1))  # the redelivered sweep request
    assert read_state(vstack.state_bucket, run.folder.prefix, "memory").heal_attempts == 1
    after = gcs.stat(vstack.bucket, run.folder.prefix + SECOND)
    assert after is not None and after.generation != before.generation  # rewritten: re-delivered
    assert len(vstack.results_for(run)) == 1  # the incomplete is not said twice
    vstack.receipt(vstack.deliver(run, SECOND))  # the heal's re-delivery lands
    assert [(r.status, r.heal_attempts) for r in vstack.results_for(run)] == [("incomplete", 1), ("in_sync", 1)]
