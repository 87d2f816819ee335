"""Objects of a mirrored bucket, delivered by the one delivery operation to Box and SFTP
(finalize, replace, delete with both policies, include/exclude, stale generations)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from shared.delivery.ledger import SHA1_KEY
from tests.mirror.conftest import DESTINATIONS, MirrorStack, sha1

UNICODE_NAME = "deep/prefix/with spaces/ünïcødé — ✓ 数据.bin"


def test_added_replaced_and_deleted_objects_follow_the_bucket_with_delete_mirror(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror")
    first = m.put(UNICODE_NAME, b"first version " * 100)
    plain = m.put("top.txt", b"top")
    m.finalized(first)
    m.finalized(plain)
    for destination in DESTINATIONS:
        assert m.copies(destination) == {UNICODE_NAME: sha1(b"first version " * 100), "top.txt": sha1(b"top")}
    assert m.sftp_path(UNICODE_NAME).read_bytes() == b"first version " * 100
    assert m.stat(UNICODE_NAME).metadata[SHA1_KEY] == sha1(b"first version " * 100)  # hashed once, remembered

    second = m.put(UNICODE_NAME, b"second, longer version " * 100)
    m.finalized(second)
    for destination in DESTINATIONS:
        assert m.copies(destination)[UNICODE_NAME] == sha1(b"second, longer version " * 100)

    m.deleted(m.remove(UNICODE_NAME))
    for destination in DESTINATIONS:
        assert m.copies(destination) == {"top.txt": sha1(b"top")}
    assert not m.sftp_path(UNICODE_NAME).exists()


def test_with_delete_keep_the_copy_of_a_deleted_object_stays(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()  # delete: keep is the default
    info = m.put("kept/a.txt", b"keep me")
    m.finalized(info)
    m.deleted(m.remove("kept/a.txt"))
    for destination in DESTINATIONS:
        assert m.copies(destination) == {"kept/a.txt": sha1(b"keep me")}


def test_delete_event_of_a_replaced_generation_keeps_the_live_copy(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """Replacing an object deletes its old generation (GCS sends a delete event for it): the copy
    of the live generation must stay."""
    m = mirror_factory(delete="mirror")
    old = m.put("model.pt", b"old weights")
    new = m.put("model.pt", b"new weights")
    m.finalized(new)
    m.deleted(old)
    for destination in DESTINATIONS:
        assert m.copies(destination) == {"model.pt": sha1(b"new weights")}


def test_a_stale_generation_never_overwrites_a_newer_one(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()
    old = m.put("report.csv", b"a,b\n1,2\n")
    new = m.put("report.csv", b"a,b\n1,2\n3,4\n")
    m.finalized(new)
    m.finalized(old)  # the older generation's event arrives late
    for destination in DESTINATIONS:
        assert m.copies(destination) == {"report.csv": sha1(b"a,b\n1,2\n3,4\n")}


def test_unchanged_objects_are_not_sent_again(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()
    info = m.put("same.bin", b"x" * 5000)
    m.finalized(info)
    before = m.sftp_path("same.bin").stat().st_mtime_ns
    m.finalized(m.stat("same.bin"))  # a redelivered event (after the sha1 metadata was recorded)
    assert m.sftp_path("same.bin").stat().st_mtime_ns == before
    for destination in DESTINATIONS:
        assert m.copies(destination) == {"same.bin": sha1(b"x" * 5000)}


def test_include_and_exclude_globs_choose_the_objects(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory(include=["models/*", "*.json"], exclude=["models/tmp/*", "*.partial"])
    for name in ("models/a.pt", "models/deep/b.pt", "models/tmp/c.pt", "models/d.pt.partial", "cfg.json", "x.txt"):
        m.finalized(m.put(name, name.encode()))
    expected = {n: sha1(n.encode()) for n in ("models/a.pt", "models/deep/b.pt", "cfg.json")}
    for destination in DESTINATIONS:
        assert m.copies(destination) == expected


def test_only_the_entrys_destinations_get_the_objects(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory(destinations=["sftp:local"], remote_folder="backups/{bucket}/objects")
    m.finalized(m.put("one.txt", b"1"))
    assert m.folder == f"backups/{m.bucket}/objects"
    assert m.copies("sftp:local") == {"one.txt": sha1(b"1")}
    assert m.copies("box") == {}


def test_receipts_of_mirrored_objects_are_acknowledged_by_verify(mirror_factory: Callable[..., MirrorStack]) -> None:
    """Each delivery sends its receipt on ``deliveries`` (run id mirror-BUCKET); verify has no
    manifest for it and leaves the bucket to its reconcile: no result, no rejection."""
    from shared.messages import DeliveryReceipt
    from shared.stages.verify import verify
    from shared.topology import DELIVERIES

    m = mirror_factory()
    sub = f"mreceipts-{uuid.uuid4().hex[:10]}"
    m.admin.create_subscription(sub, DELIVERIES)
    m.finalized(m.put("r/receipt.txt", b"r"))
    messages = m.admin.pull(sub, 10)
    receipts = [DeliveryReceipt.from_json(x["data_bytes"]) for x in messages]
    assert sorted(r.destination for r in receipts) == sorted(DESTINATIONS)
    assert {(r.run_id, r.bucket, r.object) for r in receipts} == {(f"mirror-{m.bucket}", m.bucket, "r/receipt.txt")}
    for message in messages:
        verify(m.pubsub_event(DELIVERIES, message["data_bytes"]), m.config)
    assert m.results() == []
