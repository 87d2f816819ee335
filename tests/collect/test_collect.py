"""Collect on the local stack: a real sshd as the partner, GCS and Pub/Sub emulators for state and
messages, memory / Box / SFTP destinations; the stages run in this process."""

from __future__ import annotations

import hashlib
import os

import pytest

from shared.collect import state
from shared.collect.copy import copy_file
from shared.collect.messages import CollectRequest
from shared.collect.selection import identity_of
from shared.destinations.memory import process_destination
from shared.errors import PermanentError, RejectedInput
from shared.ids import Status
from tests.collect.conftest import Collect, partner_fields


def test_files_are_collected_once_and_a_rerun_collects_nothing(collect: Collect) -> None:
    config = collect.config({"include": ["*.csv"], "exclude": ["skip_*"]})
    a, b = os.urandom(300_000), b"id,total\n1,2\n"
    collect.write("a.csv", a)
    collect.write("b.csv", b)
    collect.write("skip_me.csv", b"no")
    collect.write("notes.txt", b"no")
    assert sorted(collect.run(config)) == ["collected", "collected"]
    assert collect.memory_files() == {f"{collect.folder}/a.csv": a, f"{collect.folder}/b.csv": b}
    first = collect.results()
    assert [(r.status, r.files_expected, r.bytes_present) for r in first] == [(Status.IN_SYNC, 2, len(a) + len(b))]
    assert first[0].duration_s is not None
    assert collect.run(config) == []  # nothing new
    again = collect.results()[-1]
    assert (again.status, again.files_expected) == (Status.IN_SYNC, 0)
    assert sorted(os.listdir(collect.partner_dir)) == ["a.csv", "b.csv", "notes.txt", "skip_me.csv"]  # keep


def test_a_redelivered_file_message_copies_nothing_twice(collect: Collect) -> None:
    config = collect.config({"destinations": ["memory", "box"], "folder": f"collect/{collect.name}"})
    collect.write("daily.csv", os.urandom(50_000))
    collect.list(config)
    [message] = collect.published_files()
    assert copy_file(config, message) == "collected"
    assert copy_file(config, message) == "already"
    from shared.destinations.factory import opened

    with opened("box", config) as box:
        listed = list(box.list(collect.folder))
    assert [(f.path, f.size) for f in listed] == [(f"{collect.folder}/daily.csv", 50_000)]


def test_a_growing_file_is_not_taken_until_two_listings_agree(collect: Collect) -> None:
    from shared.collect.listing import list_and_fan_out
    from shared.errors import TransientError
    from tests.collect.conftest import _weekday

    config = collect.config()
    path = collect.write("growing.csv", b"x" * 1000)
    request = CollectRequest(collect=collect.name)
    with pytest.raises(TransientError, match="growing.csv"):
        list_and_fan_out(config, request, run_id="rgrow1", day=_weekday())  # first sighting
    with path.open("ab") as out:
        out.write(b"y" * 1000)  # still being written (mtime kept old: the writer preserves it)
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime - 3600))
    with pytest.raises(TransientError, match="growing.csv"):
        list_and_fan_out(config, request, run_id="rgrow1", day=_weekday())  # changed: still settling
    assert collect.published_files() == []
    [message] = list_and_fan_out(config, request, run_id="rgrow1", day=_weekday())  # unchanged: taken
    assert message.size == 2000
    assert copy_file(config, message) == "collected"
    assert collect.memory_files() == {f"{collect.folder}/growing.csv": b"x" * 1000 + b"y" * 1000}


def test_files_younger_than_min_age_wait(collect: Collect) -> None:
    config = collect.config({"min_age_minutes": 30})
    collect.write("fresh.csv", b"new", age_s=60)
    collect.write("old.csv", b"old", age_s=7200)
    assert collect.run(config) == ["collected"]
    assert list(collect.memory_files()) == [f"{collect.folder}/old.csv"]


def test_a_file_dated_ahead_of_our_clock_is_taken_without_a_minimum_age(collect: Collect) -> None:
    """A partner whose clock runs ahead (or writes local time as UTC) dates its files in our
    future; with min_age_minutes 0 they were held as too young, silently, run after run."""
    collect.write("ahead.csv", b"from the future", age_s=-3600)
    assert collect.run(collect.config({})) == ["collected"]
    assert list(collect.memory_files()) == [f"{collect.folder}/ahead.csv"]


@pytest.mark.parametrize("action", ["move", "delete"])
def test_post_action_runs_after_every_copy_is_verified(collect: Collect, action: str) -> None:
    processed = collect.partner_dir / "processed"
    config = collect.config({"post_action": action, "processed_dir": str(processed), "destinations": ["memory", "box"]})
    data = os.urandom(120_000)
    mtime = int(collect.write("orders.csv", data).stat().st_mtime)
    assert collect.run(config) == ["collected"]
    assert not (collect.partner_dir / "orders.csv").exists()
    if action == "move":
        assert (processed / "orders.csv").read_bytes() == data
    job = config.collect_job(collect.name)
    assert job is not None
    identity = identity_of("partner", job, "orders.csv", len(data), mtime)
    sha1 = hashlib.sha1(data).hexdigest()
    for dest, check in (("memory", "sha1"), ("box", "sha1")):
        record = state.copy_record(config.state_bucket_name, collect.name, identity, dest)
        assert record is not None
        assert (record.sha1, record.size, record.check, record.source_path) == (
            sha1,
            len(data),
            check,
            f"{collect.partner_dir}/orders.csv",
        )
        assert record.md5 == hashlib.md5(data).hexdigest()
    assert state.is_done(config.state_bucket_name, collect.name, identity)


def test_a_copy_that_cannot_be_verified_leaves_the_source_in_place(collect: Collect, user_folder) -> None:  # type: ignore[no-untyped-def]
    """A destination whose copy reads back wrong: no post-action, the file is not done."""
    from shared.destinations.memory import process_destination

    config = collect.config({"post_action": "delete"})
    collect.write("x.csv", b"payload")
    collect.list(config)
    [message] = collect.published_files()
    mem = process_destination()
    original_put = mem.put

    def corrupting_put(path, source, size, **kw):  # type: ignore[no-untyped-def]
        result = original_put(path, source, size, **kw)
        mem.corrupt(path, b"PAYLOAD")
        return result

    mem.put = corrupting_put  # type: ignore[method-assign]
    try:
        from shared.errors import TransientError

        with pytest.raises(TransientError, match="SHA-1"):
            copy_file(config, message)
    finally:
        del mem.put
    assert (collect.partner_dir / "x.csv").read_bytes() == b"payload"  # not deleted
    assert copy_file(config, message) == "collected"  # the retry puts it again, verified
    assert not (collect.partner_dir / "x.csv").exists()
    assert collect.memory_files() == {f"{collect.folder}/x.csv": b"payload"}


def test_interrupted_upload_then_retry_gives_one_complete_copy(collect: Collect, user_folder) -> None:  # type: ignore[no-untyped-def]
    from shared.errors import TransientError
    from tests.sftp.tcp_proxy import CuttingProxy

    target = user_folder("dest")
    proxy = CuttingProxy(collect.sshd.port, cut_after_bytes=1_500_000)
    try:
        known = f"[127.0.0.1]:{proxy.port} {' '.join(collect.sshd.host_public_key.split()[:2])}\n"
        flaky = {**partner_fields(collect.sshd, proxy.port, known), "directory": str(target)}
        raw_sftp = {"sftp": {"flaky": flaky}}
        config = collect.config({"destinations": ["sftp:flaky"]}, destinations=raw_sftp)
        data = os.urandom(6_000_000)
        collect.write("big.bin", data)
        collect.list(config)
        [message] = collect.published_files()
        with pytest.raises(TransientError):
            copy_file(config, message)  # the connection is cut mid-upload
        landed = target / collect.folder / "big.bin"
        assert not landed.exists()  # never visible half-written
        proxy.cut_after_bytes = None
        assert copy_file(config, message) == "collected"  # the redelivery
        assert hashlib.sha1(landed.read_bytes()).hexdigest() == hashlib.sha1(data).hexdigest()
        assert sorted(p.name for p in landed.parent.iterdir()) == ["big.bin"]
        assert collect.run(config) == []  # a rerun: nothing again
    finally:
        proxy.close()


def test_host_key_mismatch_is_refused_before_authentication(collect: Collect, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.sftp.sshd_server import keygen

    impostor = keygen(tmp_path / "impostor").with_suffix(".pub").read_text().split()
    stale = f"[127.0.0.1]:{collect.sshd.port} {impostor[0]} {impostor[1]}\n"
    config = collect.config(partner={"known_hosts": stale})
    before = collect.sshd.log_text().count("Accepted")
    collect.write("secret.csv", b"s")
    with pytest.raises(PermanentError, match="HOST KEY MISMATCH"):
        collect.list(config)
    assert collect.sshd.log_text().count("Accepted") == before  # no login happened
    assert collect.memory_files() == {}


def test_the_holiday_calendar_skips_a_day(collect: Collect) -> None:
    import datetime as dt

    from shared.collect.listing import list_and_fan_out
    from shared.collect.runs import freshness

    config = collect.config({"calendar": {"holidays": ["2026-12-25"]}})
    collect.write("a.csv", b"a")
    request = CollectRequest(collect=collect.name)
    assert list_and_fan_out(config, request, run_id="rholiday", day=dt.date(2026, 12, 25)) == []
    assert list_and_fan_out(config, request, run_id="rsunday", day=dt.date(2026, 11, 29)) == []
    skipped = collect.results()
    assert [(r.status, r.reason) for r in skipped] == [
        (Status.SKIPPED, "2026-12-25 is a holiday"),
        (Status.SKIPPED, "2026-11-29 is a Sunday, not a business day"),
    ]
    assert collect.memory_files() == {}
    record = freshness(config.state_bucket_name, collect.name)
    assert record is not None and record["last_status"] == "skipped" and "last_collected_at" not in record
    assert collect.run(config, ignore_calendar=True) == ["collected"]
    assert "last_collected_at" in (freshness(config.state_bucket_name, collect.name) or {})


def test_bad_requests_are_rejected_naming_the_field(collect: Collect) -> None:
    from shared.collect.listing import job_named

    with pytest.raises(RejectedInput, match=r"collect request\.collect: 'Bad/Name' is not a collect job name"):
        CollectRequest.from_json(b'{"collect": "Bad/Name"}')
    with pytest.raises(RejectedInput, match=r"collect request: unknown field 'tables'"):
        CollectRequest.from_json(b'{"collect": "toast", "tables": "x"}')
    with pytest.raises(RejectedInput, match="'nope' is not a configured collect job"):
        job_named(collect.config(), "nope")


def test_folder_slash_collects_into_the_destination_root_itself(collect: Collect) -> None:
    """``folder: "/"``: files land directly in the destination's root (an app reads one Drive folder)."""
    config = collect.config({"folder": "/", "include": [f"{collect.name}-*.csv"]})
    name = f"{collect.name}-daily.csv"
    collect.write(name, b"id,total\n1,2\n")
    assert collect.run(config) == ["collected"]
    memory = process_destination()
    assert memory.open(name).read() == b"id,total\n1,2\n"
    assert list(memory.list(collect.folder)) == []
    [result] = collect.results()
    assert (result.status, result.files_expected) == (Status.IN_SYNC, 1)
