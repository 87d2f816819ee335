"""Collect when things change under it: a partner file rewritten, grown or shrunk while it is
copied, a directory that keeps receiving files while the run lists, a result whose publish fails,
a file's message delivered twice. Each run is still reported once, truthfully, and no copy that
may mix two versions of a file stays at a destination.

The partner's change is made at a set moment of the copy: right after collect has read the
file's first bytes, through the real SFTP stream (:func:`partner_changes_after_first_read`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from offsite.cli import app
from shared.collect import runs
from shared.collect import source as source_mod
from shared.collect.copy import copy_file
from shared.collect.listing import list_and_fan_out
from shared.collect.messages import CollectRequest
from shared.destinations.base import ByteStream
from shared.destinations.factory import opened
from shared.errors import TransientError
from shared.ids import Status
from shared.topology import VERIFY_RESULTS
from tests.collect.conftest import Collect, _weekday
from tests.collect.test_cli import cli_config
from tests.pubsub_outage import PublishOutage

__all__ = ["cli_config"]


def partner_changes_after_first_read(
    monkeypatch: pytest.MonkeyPatch, path: Path, change: Callable[[Path], None]
) -> None:
    """The partner runs ``change`` on ``path`` once collect's copy has read its first bytes (the
    real SFTP stream; only the moment is chosen here)."""
    real_open = source_mod.SftpSource.open

    class ChangedAfterFirstRead:
        def __init__(self, inner: ByteStream) -> None:
            self.inner, self.done = inner, False

        def read(self, size: int = -1, /) -> bytes:
            data = self.inner.read(size)
            if not self.done:
                self.done = True
                change(path)
            return data

        def close(self) -> None:
            self.inner.close()

    monkeypatch.setattr(source_mod.SftpSource, "open", lambda self, name: ChangedAfterFirstRead(real_open(self, name)))


def _rewritten_in_place(path: Path) -> None:
    """Same size, other bytes, a later mtime: an exporter that rewrites its file where it lies."""
    stamp = int(path.stat().st_mtime) + 5
    with path.open("r+b") as f:
        f.write(b"N" * path.stat().st_size)
    os.utime(path, (stamp, stamp))


def _appended(path: Path) -> None:
    stamp = int(path.stat().st_mtime) + 5
    with path.open("ab") as f:
        f.write(b"more rows\n" * 1000)
    os.utime(path, (stamp, stamp))


def _truncated(path: Path) -> None:
    stamp = int(path.stat().st_mtime) + 5
    os.truncate(path, path.stat().st_size // 2)
    os.utime(path, (stamp, stamp))


def test_a_result_whose_publish_fails_is_published_by_the_redelivery(
    collect: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = collect.config({})
    collect.write("a.csv", b"id\n1\n")
    collect.list(config)
    [message] = collect.published_files()
    outage = PublishOutage(monkeypatch, VERIFY_RESULTS)
    with pytest.raises(TransientError):
        copy_file(config, message)  # the function answers 500: Pub/Sub redelivers the message
    assert outage.refused > 0
    outage.end()
    assert copy_file(config, message) == "already"
    [result] = collect.results()
    assert (result.status, result.files_present, result.bytes_present) == (Status.IN_SYNC, 1, 5)
    fresh = runs.freshness(config.state_bucket_name, collect.name)
    assert fresh is not None and fresh["last_run_id"] == message.run_id and fresh["last_collected_at"]
    assert copy_file(config, message) == "already"  # reported once
    assert len(collect.results()) == 1


def test_a_skip_whose_publish_fails_is_published_by_the_redelivery(
    collect: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    config = collect.config({})
    request = CollectRequest(collect=collect.name)
    sunday = dt.date(2026, 11, 29)
    outage = PublishOutage(monkeypatch, VERIFY_RESULTS)
    with pytest.raises(TransientError):
        list_and_fan_out(config, request, run_id="rskip1", day=sunday)
    outage.end()
    list_and_fan_out(config, request, run_id="rskip1", day=sunday)
    [result] = collect.results()
    assert result.status == Status.SKIPPED


def test_a_redelivered_file_message_keeps_its_collected_bytes(collect: Collect) -> None:
    config = collect.config({})
    a, b = os.urandom(100_000), os.urandom(50_000)
    collect.write("a.csv", a)
    collect.write("b.csv", b)
    collect.list(config)
    messages = {m.name: m for m in collect.published_files()}
    assert copy_file(config, messages["a.csv"]) == "collected"
    assert copy_file(config, messages["a.csv"]) == "already"  # the redelivery
    assert copy_file(config, messages["b.csv"]) == "collected"
    [result] = collect.results()
    assert (result.status, result.files_present, result.bytes_present) == (Status.IN_SYNC, 2, len(a) + len(b))


def test_a_file_rewritten_while_copied_leaves_no_copy_and_the_run_incomplete(
    collect: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = collect.config({})
    path = collect.write("daily.csv", b"O" * (4 * 1024 * 1024))
    collect.list(config)
    [message] = collect.published_files()
    with monkeypatch.context() as during:
        partner_changes_after_first_read(during, path, _rewritten_in_place)
        assert copy_file(config, message) == "changed"
    assert f"{collect.folder}/daily.csv" not in collect.memory_files()  # no mix of old and new bytes
    [result] = collect.results()
    assert (result.status, result.files_present, result.files_expected) == (Status.INCOMPLETE, 0, 1)
    assert result.missing == ["daily.csv"]
    assert result.reason is not None and "daily.csv (changed while copied" in result.reason
    assert collect.run(config) == ["collected"]  # the next run takes the new version
    assert collect.memory_files()[f"{collect.folder}/daily.csv"] == path.read_bytes()


@pytest.mark.parametrize("dest", ["drive:reports", "box"])
@pytest.mark.parametrize("change", [_appended, _truncated], ids=["grows", "shrinks"])
def test_a_file_growing_or_shrinking_while_copied_is_left_for_the_next_run(
    collect: Collect, monkeypatch: pytest.MonkeyPatch, dest: str, change: Callable[[Path], None]
) -> None:
    config = collect.config({"destinations": [dest]})
    path = collect.write("growing.csv", os.urandom(3 * 1024 * 1024))
    collect.list(config)
    [message] = collect.published_files()
    outcome = None
    with monkeypatch.context() as during:
        partner_changes_after_first_read(during, path, change)
        try:
            outcome = copy_file(config, message)  # "changed" when the first read held every byte
        except TransientError as exc:  # noticed mid-read: retried, not a permanent failure
            assert "changed" in str(exc)
    if outcome is None:
        outcome = copy_file(config, message)  # the redelivery finds the new version
    assert outcome == "changed"
    [result] = collect.results()
    assert result.status == Status.INCOMPLETE
    with opened(dest, config) as destination:
        assert destination.stat(f"{collect.folder}/growing.csv") is None


def test_a_directory_receiving_files_while_listed_reports_the_run(collect: Collect, cli_config: Path) -> None:
    config = collect.config({})
    request = CollectRequest(collect=collect.name)
    attempts = config.pubsub.max_delivery_attempts
    raised = 0
    for attempt in range(attempts):  # the request's deliveries until one succeeds
        collect.write(f"batch_{attempt:02d}.csv", b"id\n1\n")  # one more finished file of the batch
        try:
            list_and_fan_out(config, request, run_id="rbusy1", day=_weekday())
            break
        except TransientError:
            raised += 1
    assert raised == 1  # only the first listing waits, for the files it found new
    for message in collect.published_files():
        copy_file(config, message)
    [result] = collect.results()
    assert (result.status, result.files_present, result.files_expected) == (Status.IN_SYNC, 1, 1)
    assert result.reason is not None and "left for the next run: batch_01.csv" in result.reason
    status = CliRunner().invoke(app, ["collect", "status", collect.name])  # the reason of an in_sync run shows
    assert status.exit_code == 0 and "batch_01.csv" in status.stdout, status.output
    assert collect.run(config) == ["collected"]  # the next run takes it
