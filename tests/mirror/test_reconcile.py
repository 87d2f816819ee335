"""The scheduled reconcile: both sides listed, the difference reported on verify-results
(missing, extra, size, hash) and fixed through the one delivery operation."""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from shared import runtime
from shared.destinations import factory
from shared.errors import RejectedInput, TransientError
from shared.ids import DestinationId, Stage
from shared.messages import VerifyResult
from shared.mirror import reconcile
from shared.mirror.reconcile import Asked
from shared.mirror.request import MirrorRequest
from shared.stages import runner
from shared.stages.verify import verify
from shared.topology import MIRROR_RECONCILES
from shared.verify.engine import NoTimeLeft
from tests.mirror.conftest import DESTINATIONS, MirrorStack, sha1

FILES = {"a.txt": b"alpha " * 50, "dir/b.bin": b"bravo " * 50, "dir/sub/c.csv": b"charlie " * 50}


def _by_destination(results: list[VerifyResult]) -> dict[str, VerifyResult]:
    assert len(results) == len({r.destination for r in results}), results
    return {str(r.destination): r for r in results}


def _delivered(m: MirrorStack) -> None:
    for name, data in FILES.items():
        m.finalized(m.put(name, data))


def test_reconcile_reports_missing_extra_size_and_hash_then_fixes_them(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror")
    _delivered(m)
    # Drift at the SFTP server: one file gone, one with other bytes of the same size and the
    # same mtime (bit rot, or a tool that keeps times: only the bytes tell), one truncated, one
    # that is not in the bucket.
    m.sftp_path("a.txt").unlink()
    corrupted = m.sftp_path("dir/b.bin")
    delivered = corrupted.stat()
    corrupted.write_bytes(b"X" * len(FILES["dir/b.bin"]))
    os.utime(corrupted, ns=(delivered.st_atime_ns, delivered.st_mtime_ns))
    m.sftp_path("dir/sub/c.csv").write_bytes(b"short")
    m.sftp_path("stray.log").write_bytes(b"not in the bucket")
    # Drift in Box: one file gone, one replaced by other bytes of the same size.
    with factory.opened("box", m.config) as box:
        box.delete(f"{m.folder}/dir/sub/c.csv")
        box.put(f"{m.folder}/a.txt", io.BytesIO(b"Y" * len(FILES["a.txt"])), len(FILES["a.txt"]))

    found = _by_destination(m.reconcile(fix=False))
    sftp, box_result = found["sftp:local"], found["box"]
    assert sftp.status == "mismatch" and sftp.check == "sha1"
    assert (sftp.missing, sftp.extra, sftp.size_differs, sftp.hash_differs) == (
        ["a.txt"],
        ["stray.log"],
        ["dir/sub/c.csv"],
        ["dir/b.bin"],
    )
    assert box_result.status == "mismatch" and box_result.check == "sha1"
    assert (box_result.missing, box_result.hash_differs) == (["dir/sub/c.csv"], ["a.txt"])
    for result in found.values():
        assert result.run_id == f"mirror-{m.bucket}"
        assert result.source is not None and result.source.label == f"gs://{m.bucket}"
        assert result.stage == "mirror:reconcile"
        assert result.files_expected == 3
    assert m.continuations() == 0  # check-only: nothing re-delivered
    assert m.sftp_path("stray.log").exists()

    fixing = _by_destination(m.reconcile())
    assert fixing["sftp:local"].status == "mismatch"  # what was found; the fix follows
    assert "3 re-delivery(ies) requested" in (fixing["sftp:local"].reason or "")
    assert "1 extra file(s) deleted" in (fixing["sftp:local"].reason or "")
    assert m.continuations() == 5  # 3 for SFTP, 2 for Box
    expected = {name: sha1(data) for name, data in FILES.items()}
    for destination in DESTINATIONS:
        assert m.copies(destination) == expected

    after = _by_destination(m.reconcile(fix=False))
    assert {d: r.status for d, r in after.items()} == {"box": "in_sync", "sftp:local": "in_sync"}
    assert all(r.check == "sha1" and not (r.missing or r.extra) for r in after.values())


def test_objects_that_never_had_an_event_are_delivered_by_the_reconcile(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory()
    for name, data in FILES.items():
        m.put(name, data)  # no finalize event reached the functions (a lost event, or a new mirror)
    found = _by_destination(m.reconcile())
    for result in found.values():
        assert result.status == "mismatch"
        assert sorted(result.missing) == sorted(FILES)
        assert result.check == "size-only"  # not hashed yet: said so, never silently weaker
    assert m.continuations() == 6
    after = _by_destination(m.reconcile(fix=False))
    assert {d: (r.status, r.check) for d, r in after.items()} == {
        "box": ("in_sync", "sha1"),
        "sftp:local": ("in_sync", "sha1"),
    }


def test_with_delete_keep_copies_of_deleted_objects_are_listed_but_kept(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory()
    _delivered(m)
    m.remove("a.txt")
    found = _by_destination(m.reconcile())
    for destination, result in found.items():
        assert result.status == "in_sync", result.reason
        assert result.extra == ["a.txt"]
        assert "extra files kept (delete: keep)" in (result.reason or "")
        assert "a.txt" in m.copies(destination)


def test_reconcile_of_one_destination_only(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()
    _delivered(m)
    (result,) = m.reconcile(destination="sftp:local")
    assert result.destination == "sftp:local" and result.status == "in_sync"


def test_a_request_for_the_bucket_is_handed_on_one_per_destination_each_retried_alone(
    mirror_factory: Callable[..., MirrorStack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = mirror_factory()
    _delivered(m)
    asked = MirrorRequest(bucket=m.bucket, fix=False, request_id="http-split")
    verify(m.pubsub_event(MIRROR_RECONCILES, asked.to_json()), m.config)
    assert m.results() == []  # nothing listed or reported in the invocation that split it
    handed_on = {str(r.destination): r for r in m.handed_on(len(DESTINATIONS))}
    assert sorted(handed_on) == sorted(DESTINATIONS)
    assert all(r.bucket == m.bucket and r.fix is False and r.request_id == "http-split" for r in handed_on.values())

    # The SFTP server is down now: its request fails and is retried by Pub/Sub alone; Box's reports.
    raw = yaml.safe_load(Path(os.environ["OFFSITE_CONFIG"]).read_text())
    raw["destinations"]["sftp"]["local"]["port"] = _closed_port()
    down = tmp_path / "sftp-down.yaml"
    down.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("OFFSITE_CONFIG", str(down))
    runtime.reset()
    with pytest.raises(TransientError):
        verify(m.pubsub_event(MIRROR_RECONCILES, handed_on["sftp:local"].to_json()), m.config)
    verify(m.pubsub_event(MIRROR_RECONCILES, handed_on["box"].to_json()), m.config)
    (result,) = m.results()
    assert (result.destination, result.status, result.request_id) == ("box", "in_sync", "http-split")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_bucket_that_is_not_mirrored_is_rejected_naming_it(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()
    m.bucket = "not-mirrored-here"
    with pytest.raises(RejectedInput, match=r"mirror request.bucket: 'not-mirrored-here' is not a mirrored bucket"):
        m.reconcile()


def test_an_object_written_during_the_reconcile_keeps_its_copy_under_delete_mirror(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror")
    m.finalized(m.put("a.txt", b"alpha"))
    mirror = m.config.mirror(m.bucket)
    assert mirror is not None
    listed = reconcile.selected_objects(mirror)  # what the reconcile compares: listed first
    m.finalized(m.put("new.txt", b"written after the listing"))  # then written and delivered
    for destination in DESTINATIONS:
        outcome = reconcile.reconcile_destination(mirror, listed, DestinationId.parse(destination), m.config, Asked())
        assert outcome.result.status == "in_sync", outcome.result.reason
        assert outcome.deleted == () and outcome.result.extra == []
        assert m.copies(destination)["new.txt"] == sha1(b"written after the listing")


def test_copies_of_objects_left_out_by_exclude_stay_under_delete_mirror(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror", exclude=["*.tmp"])
    m.finalized(m.put("a.txt", b"alpha"))
    m.put("scratch.tmp", b"excluded now")  # its copy was delivered before the exclude was added:
    m.put("up\\..\\escape.txt", b"never mirrored")  # a '..' name has no copy and breaks nothing
    for destination in DESTINATIONS:
        with factory.opened(destination, m.config) as dest:
            dest.put(f"{m.folder}/scratch.tmp", io.BytesIO(b"excluded now"), 12)
    found = _by_destination(m.reconcile())
    for destination, result in found.items():
        assert result.status == "in_sync", result.reason
        assert m.copies(destination)["scratch.tmp"] == sha1(b"excluded now")
    m.remove("scratch.tmp")  # once the object is gone, its copy is an extra like any other
    for destination, result in _by_destination(m.reconcile()).items():
        assert result.extra == ["scratch.tmp"] and "1 extra file(s) deleted" in (result.reason or "")
        assert "scratch.tmp" not in m.copies(destination)


def test_a_reconcile_out_of_time_stops_before_fixing_and_says_how_to_split_the_bucket(
    mirror_factory: Callable[..., MirrorStack], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = mirror_factory(delete="mirror")
    _delivered(m)
    m.sftp_path("a.txt").unlink()  # a difference the reconcile would fix, had it the time
    mirror = m.config.mirror(m.bucket)
    assert mirror is not None
    advice = (
        r"; one reconcile has 400 s of verify's 540 s to list and compare: split the bucket into buckets\[\] entries"
    )
    with pytest.raises(NoTimeLeft, match=rf"^mirror reconcile of gs://{m.bucket}: listing the bucket: .*{advice}"):
        reconcile.selected_objects(mirror, deadline=time.monotonic())
    objects = reconcile.selected_objects(mirror)
    sftp = DestinationId.parse("sftp:local")
    with pytest.raises(NoTimeLeft, match=rf"^mirror reconcile of gs://{m.bucket} at sftp:local: listing .*{advice}"):
        reconcile.reconcile_destination(mirror, objects, sftp, m.config, Asked(deadline=time.monotonic()))
    assert m.continuations() == 0 and not m.sftp_path("a.txt").exists()  # nothing fixed

    # Through verify: the request is reported failed with that reason, once, and not retried.
    monkeypatch.setattr(reconcile, "COMPARE_S", 0.0)
    request = MirrorRequest(bucket=m.bucket, destination=sftp, request_id="http-late")
    runner.run(Stage.VERIFY, m.pubsub_event(MIRROR_RECONCILES, request.to_json()), verify)  # acked: no raise
    (failed,) = m.results()
    assert (failed.status, failed.destination, failed.run_id) == ("failed", "sftp:local", f"mirror-{m.bucket}")
    assert failed.request_id == "http-late"  # the caller's ?wait finds its reconcile's failure
    assert failed.source is not None and failed.source.label == f"gs://{m.bucket}"
    assert failed.reason is not None and "split the bucket into buckets[] entries" in failed.reason


def test_what_a_reconcile_read_back_before_its_time_ran_out_is_used_then_forgotten(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """sftp:local lists no SHA-1s: the reconcile reads files back, and what an invocation that ran
    out of time read is kept (shared/verify/readback.py). Here the record says dir/b.bin had other
    bytes of its size: the next reconcile takes that as read (a mismatch, without a download),
    then forgets the record, so the one after reads everything again."""
    import json

    from shared.gcp import gcs
    from shared.mirror import latest
    from shared.verify import readback

    m = mirror_factory(delete="mirror")
    _delivered(m)
    mirror = m.config.mirror(m.bucket)
    assert mirror is not None
    name = latest.readback_name(mirror, "sftp:local")
    mtime = int(m.sftp_path("dir/b.bin").stat().st_mtime)  # as the server lists it
    other = {"size": len(FILES["dir/b.bin"]), "mtime": mtime, "sha1": sha1(b"X" * len(FILES["dir/b.bin"]))}
    record = {"at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "files": {f"{m.folder}/dir/b.bin": other}}
    gcs.write(m.config.state_bucket_name, name, json.dumps(record).encode(), "application/json")
    assert readback.load(m.config.state_bucket_name, name)[0].files  # the record is read as kept

    (found,) = m.reconcile(fix=False, destination="sftp:local")
    assert (found.status, found.hash_differs) == ("mismatch", ["dir/b.bin"])
    assert gcs.read_bytes(m.config.state_bucket_name, name) is None
    (again,) = m.reconcile(fix=False, destination="sftp:local")
    assert again.status == "in_sync"
