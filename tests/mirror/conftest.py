"""Fixtures of the mirror tests: the shared bare stack's GCS, Pub/Sub, Box server and OpenSSH
SFTP server, a fresh bucket per test, and a config mirroring it (``buckets[]``) to ``box`` and
``sftp:local``.

The delivery functions' and verify's handlers run in the test process on real events: finalize
and delete CloudEvents built from the bucket's real objects, continuation and reconcile messages
pulled from the emulator and handed over as Pub/Sub would push them.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.state import StackInfo
from shared import runtime
from shared.config import Config
from shared.destinations import factory
from shared.destinations.base import Readable
from shared.gcp import clients, gcs
from shared.ids import Stage
from shared.messages import VerifyResult
from shared.mirror.request import MirrorRequest
from shared.mirror.routing import mirror_destinations
from shared.stages.deliver import handler_for
from shared.stages.verify import verify
from shared.topology import (
    DELIVERY_CONTINUATIONS,
    GCS_DELETED,
    GCS_FINALIZED,
    MIRROR_RECONCILES,
    VERIFY_RESULTS,
)
from tests import cloudevents

DESTINATIONS = ("box", "sftp:local")


class MirrorStack:
    """One test's mirrored bucket and what the pipeline made of it."""

    def __init__(self, info: StackInfo, bucket: str) -> None:
        self.info = info
        self.bucket = bucket
        self.admin = info.pubsub_admin()
        self.results_sub = f"mresults-{uuid.uuid4().hex[:12]}"
        self.admin.create_subscription(self.results_sub, VERIFY_RESULTS)
        self.admin.create_topic(DELIVERY_CONTINUATIONS)
        self.continuations_sub = f"mcont-{uuid.uuid4().hex[:12]}"
        self.admin.create_subscription(self.continuations_sub, DELIVERY_CONTINUATIONS)
        self.admin.create_topic(MIRROR_RECONCILES)
        self.reconciles_sub = f"mrec-{uuid.uuid4().hex[:12]}"
        self.admin.create_subscription(self.reconciles_sub, MIRROR_RECONCILES)
        clients.storage_client().create_bucket(bucket)

    @property
    def config(self) -> Config:
        return runtime.config()

    @property
    def folder(self) -> str:
        mirror = self.config.mirror(self.bucket)
        assert mirror is not None
        return mirror.folder

    # ---- the bucket ------------------------------------------------------------------------

    def put(self, name: str, data: bytes) -> gcs.ObjectInfo:
        return gcs.write(self.bucket, name, data)

    def stat(self, name: str) -> gcs.ObjectInfo:
        info = gcs.stat(self.bucket, name)
        assert info is not None, name
        return info

    def remove(self, name: str) -> gcs.ObjectInfo:
        """Delete the object; returns the generation deleted (what the delete event carries)."""
        info = self.stat(name)
        assert gcs.delete(self.bucket, name)
        return info

    # ---- events, as Eventarc and Pub/Sub deliver them ----------------------------------------

    def storage_event(self, info: gcs.ObjectInfo, event_type: str = GCS_FINALIZED) -> dict[str, Any]:
        return cloudevents.storage_event(info, event_type)

    def pubsub_event(
        self, topic: str, data: bytes, attributes: dict[str, str] | None = None, message_id: str | None = None
    ) -> dict[str, Any]:
        return cloudevents.pubsub_event(
            self.info.project, topic, data, attributes, subscriber="test", message_id=message_id
        )

    def to_delivery_functions(self, event: dict[str, Any], budget_s: float | None = None) -> None:
        """What upload_box and transfer_sftp each do with one event (``budget_s``: their time
        budget per invocation instead of the config's)."""
        for stage in (Stage.UPLOAD_BOX, Stage.TRANSFER_SFTP):
            handler_for(stage, budget_s=budget_s)(event, self.config)

    def finalized(self, info: gcs.ObjectInfo, budget_s: float | None = None) -> None:
        self.to_delivery_functions(self.storage_event(info), budget_s)

    def deleted(self, info: gcs.ObjectInfo) -> None:
        self.to_delivery_functions(self.storage_event(info, GCS_DELETED))

    def continuations(self, budget_s: float | None = None) -> int:
        """Push every waiting ``delivery-continuations`` message (and those they publish) to
        both delivery functions; returns how many."""
        pushed = 0
        while batch := self.admin.pull(self.continuations_sub, 100):
            for message in batch:
                event = self.pubsub_event(DELIVERY_CONTINUATIONS, message["data_bytes"], message.get("attributes"))
                self.to_delivery_functions(event, budget_s)
                pushed += 1
            assert pushed < 100, "deliveries keep continuing without finishing"
        return pushed

    def reconcile(self, *, fix: bool = True, destination: str | None = None) -> list[VerifyResult]:
        """verify's ``mirror-reconciles`` route, and the per-destination requests it publishes
        for this bucket pushed to it as Pub/Sub would; returns the results published."""
        request = MirrorRequest.model_validate({"bucket": self.bucket, "fix": fix, "destination": destination})
        verify(self.pubsub_event(MIRROR_RECONCILES, request.to_json()), self.config)
        mirror = self.config.mirror(self.bucket)
        targets = mirror_destinations(mirror, self.config) if destination is None and mirror else ()
        for handed_on in self.handed_on(len(targets) if len(targets) > 1 else 0):
            verify(self.pubsub_event(MIRROR_RECONCILES, handed_on.to_json()), self.config)
        return self.results()

    def handed_on(self, expected: int, within_s: float = 10.0) -> list[MirrorRequest]:
        """The ``expected`` per-destination requests for this bucket published on
        ``mirror-reconciles`` (and any more already there) since the last call; fails when fewer
        arrive within ``within_s``."""
        found: list[MirrorRequest] = []
        deadline = time.monotonic() + within_s
        while True:
            while batch := self.admin.pull(self.reconciles_sub, 100):
                requests = (MirrorRequest.from_json(m["data_bytes"]) for m in batch)
                found.extend(r for r in requests if r.bucket == self.bucket and r.destination is not None)
            if len(found) >= expected:
                return found
            assert time.monotonic() < deadline, f"{len(found)} of {expected} requests handed on"
            time.sleep(0.1)

    def results(self) -> list[VerifyResult]:
        found: list[VerifyResult] = []
        for _ in range(3):  # the emulator may answer a pull before every message is visible
            while batch := self.admin.pull(self.results_sub, 100):
                found.extend(VerifyResult.from_json(m["data_bytes"]) for m in batch)
        return found

    # ---- the destinations ------------------------------------------------------------------

    def copies(self, destination: str) -> dict[str, str]:
        """{path under the bucket's folder: SHA-1 of the bytes read back} at ``destination``."""
        with factory.opened(destination, self.config) as dest:
            assert isinstance(dest, Readable)
            out = {}
            for f in dest.list(self.folder):
                stream = dest.open(f.path)
                try:
                    out[f.path[len(self.folder) + 1 :]] = hashlib.sha1(stream.read()).hexdigest()
                finally:
                    stream.close()
            return out

    def sftp_path(self, name: str) -> Path:
        """The file on the SFTP server's disk (the local partner's directory is a local path)."""
        return Path(self.config.sftp_partner("local").directory) / self.folder / name


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture
def mirror_factory(
    bare_stack_env: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., MirrorStack]]:
    """``mirror_factory(**bucket_entry_fields)`` → a MirrorStack whose config mirrors a fresh bucket
    (``box=`` settings override the Box destination's)."""

    def make(box: dict[str, Any] | None = None, **entry: Any) -> MirrorStack:
        raw = yaml.safe_load(bare_stack_env.config_path.read_text())
        raw["destinations"]["box"].update(box or {})
        bucket = f"mirror-{uuid.uuid4().hex[:10]}"
        raw["buckets"] = [{"name": bucket, "destinations": list(DESTINATIONS), **entry}]
        path = tmp_path / f"config-{bucket}.yaml"
        path.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("OFFSITE_CONFIG", str(path))
        runtime.reset()
        return MirrorStack(bare_stack_env, bucket)

    yield make
    runtime.reset()
