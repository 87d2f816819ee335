"""A verification that reads files back from the SFTP server (no server hashing) across
invocations (shared/verify/readback.py): what one invocation read back is kept and used by the
next; the record is deleted once a comparison completes, and one older than two hours is not
used; out of time, the invocation raises a transient error (redelivered), or, when a whole
invocation read back nothing, reports `failed` saying how to fix it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from shared.errors import TransientError
from shared.gcp import gcs
from shared.verify import readback
from tests.verify.conftest import SECOND, THREE_FILES, Run, VerifyStack

pytestmark = pytest.mark.stack
SFTP = "sftp:local"


def delivered(vstack: VerifyStack) -> Run:
    run = vstack.new_run(THREE_FILES, destinations=(SFTP,))
    vstack.deliver_all(run, SFTP)
    return run


def keep(vstack: VerifyStack, run: Run, files: dict[str, bytes], at: dt.datetime, *, moved_s: int = 0) -> str:
    """A record as an invocation that ran out of time leaves it: these files' SHA-1s, read at ``at``
    when each had its size and its mtime on the server (``moved_s`` later: it changed since)."""
    name = readback.record_name(run.folder.prefix, SFTP)
    directory = Path(vstack.config.sftp_partner("local").directory)

    def entry(n: str, data: bytes) -> dict[str, object]:
        mtime = int((directory / vstack.remote_path(run, n, SFTP)).stat().st_mtime) + moved_s
        return {"size": len(data), "mtime": mtime, "sha1": hashlib.sha1(data).hexdigest()}

    body = {"at": at.isoformat(), "files": {vstack.remote_path(run, n, SFTP): entry(n, d) for n, d in files.items()}}
    gcs.write(vstack.state_bucket, name, json.dumps(body).encode(), "application/json")
    return name


def test_what_an_earlier_invocation_read_back_is_used_then_forgotten(vstack: VerifyStack) -> None:
    run = delivered(vstack)
    # The record says SECOND had other bytes of the same size when it was read back: the next
    # invocation takes that as read, and does not download SECOND again.
    other = {SECOND: bytes(len(THREE_FILES[SECOND]))}
    name = keep(vstack, run, other, dt.datetime.now(dt.UTC))
    vstack.request({"run_id": run.run_id})
    [result] = vstack.results_for(run, SFTP)
    assert (result.status, result.check) == ("mismatch", "sha1")
    assert result.hash_differs == [SECOND], result
    assert gcs.read_bytes(vstack.state_bucket, name) is None  # the comparison completed: forgotten

    vstack.request({"run_id": run.run_id})  # a later verification reads every file again
    assert [r.status for r in vstack.results_for(run, SFTP)] == ["mismatch", "in_sync"]


def test_a_file_whose_mtime_changed_since_it_was_read_is_read_again(vstack: VerifyStack) -> None:
    run = delivered(vstack)
    keep(vstack, run, {SECOND: bytes(len(THREE_FILES[SECOND]))}, dt.datetime.now(dt.UTC), moved_s=-5)
    vstack.request({"run_id": run.run_id})
    assert [r.status for r in vstack.results_for(run, SFTP)] == ["in_sync"]


def test_a_record_older_than_two_hours_is_not_used(vstack: VerifyStack) -> None:
    run = delivered(vstack)
    old = keep(vstack, run, {SECOND: bytes(len(THREE_FILES[SECOND]))}, dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    vstack.request({"run_id": run.run_id})
    assert [r.status for r in vstack.results_for(run, SFTP)] == ["in_sync"]
    assert gcs.read_bytes(vstack.state_bucket, old) is None  # an abandoned verification's record is removed too


def test_out_of_time_the_event_is_retried_and_nothing_is_reported(
    vstack: VerifyStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = delivered(vstack)
    save_s = readback.SAVE_S
    monkeypatch.setattr(readback, "SAVE_S", 10_000.0)  # the invocation's time has run out already
    with pytest.raises(TransientError, match=r"not done when the time for it ran out.*the redelivery goes on"):
        vstack.request({"run_id": run.run_id})
    assert vstack.results_for(run, SFTP) == []
    monkeypatch.setattr(readback, "SAVE_S", save_s)
    vstack.request({"run_id": run.run_id})  # the redelivery, with a whole invocation
    assert [r.status for r in vstack.results_for(run, SFTP)] == ["in_sync"]


def test_a_whole_invocation_that_read_back_nothing_is_failed_with_the_fix(
    vstack: VerifyStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = delivered(vstack)
    monkeypatch.setattr(readback, "SAVE_S", 10_000.0)
    monkeypatch.setattr(readback, "WHOLE_S", -20_000.0)  # as if it had started with the whole budget
    vstack.request({"run_id": run.run_id})  # acked: a retry would run out the same way
    [failed] = vstack.results_for(run, SFTP)
    assert failed.status == "failed", failed
    assert "read back nothing: give sftp:local server hashing (hashing: sha1sum or check-file" in (failed.reason or "")
