"""The mirror on the full local stack, as the README shows it: objects written to the sample
bucket (offsite-local-files, ``delete: mirror``) reach Box and SFTP through fake-gcs-server's
notifications, the relay and the running upload_box / transfer_sftp functions; a replacement
and a delete follow; a reconcile request reaches the verify function, which reports in_sync."""

from __future__ import annotations

import hashlib
import uuid

from devstack.localconfig import MIRRORED_BUCKET
from devstack.state import StackInfo
from shared import runtime
from shared.destinations import factory
from shared.destinations.base import Readable
from shared.gcp import gcs, pubsub
from shared.messages import VerifyResult
from shared.mirror.request import MirrorRequest
from shared.topology import MIRROR_RECONCILES, VERIFY_RESULTS
from tests.run_folders import eventually

DESTINATIONS = ("box", "sftp:local")


def _copy_sha1(destination: str, path: str) -> str | None:
    with factory.opened(destination, runtime.config()) as dest:
        if dest.stat(path) is None:
            return None
        assert isinstance(dest, Readable)
        stream = dest.open(path)
        try:
            return hashlib.sha1(stream.read()).hexdigest()
        finally:
            stream.close()


def _exists(destination: str, path: str) -> bool:
    with factory.opened(destination, runtime.config()) as dest:
        return dest.stat(path) is not None


def test_objects_added_replaced_and_deleted_in_the_bucket_follow_at_box_and_sftp(stack_env: StackInfo) -> None:
    name = f"e2e {uuid.uuid4().hex[:8]}/Prüfbericht ✓.txt"
    path = f"GCP/storage/{MIRRORED_BUCKET}/{name}"
    for version in (b"first version\n", b"second, replaced version\n"):
        gcs.write(MIRRORED_BUCKET, name, version)
        want = hashlib.sha1(version).hexdigest()
        for destination in DESTINATIONS:
            eventually(lambda d=destination, w=want: _copy_sha1(d, path) == w, f"{version!r} at {destination}", 120)

    admin = stack_env.pubsub_admin()
    results_sub = f"e2e-mirror-{uuid.uuid4().hex[:8]}"
    admin.create_subscription(results_sub, VERIFY_RESULTS)
    pubsub.publish(MIRROR_RECONCILES, MirrorRequest(bucket=MIRRORED_BUCKET, fix=False))
    found: dict[str, VerifyResult] = {}

    def reported() -> bool:
        for message in admin.pull(results_sub, 100):
            result = VerifyResult.from_json(message["data_bytes"])
            if result.run_id == f"mirror-{MIRRORED_BUCKET}":
                found[str(result.destination)] = result
        return set(found) == set(DESTINATIONS)

    eventually(reported, "a reconcile result per destination", 120)
    assert {d: r.status for d, r in found.items()} == {"box": "in_sync", "sftp:local": "in_sync"}, found

    gcs.delete(MIRRORED_BUCKET, name)
    for destination in DESTINATIONS:
        eventually(lambda d=destination: not _exists(d, path), f"the copy deleted at {destination}", 120)
