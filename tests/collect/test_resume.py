"""A collected file's copy longer than its time budget: checkpoint, continuation, resume — on
the local stack (a real sshd as the partner and as the SFTP destination, GCS and Pub/Sub).

collect_copy runs here with a budget of 0 s, as tests/resume_kit.py runs the deliveries: each
invocation sends one chunk, checkpoints in the state bucket and publishes the file's message
again on ``collect-files``, which the test feeds back to the stage, as the push subscription does.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.collect import state
from shared.collect.copy import copy_file
from shared.collect.messages import CollectFile
from shared.collect.resume import checkpoint_name
from shared.collect.selection import FileIdentity, identity_of
from shared.config import Config, from_dict
from shared.delivery import checkpoint
from shared.delivery.checkpoint import Checkpoint
from shared.errors import ConfigError
from shared.gcp import gcs
from shared.ids import Status
from tests.collect.conftest import Collect, partner_fields

SIZE = 5 * 1024 * 1024 + 4321  # six 1 MiB chunks at the SFTP destination
DEST = "sftp:dest"


def _config(collect: Collect, target: Path) -> Config:
    dest = {**partner_fields(collect.sshd), "directory": str(target)}
    job = {"destinations": [DEST], "post_action": "move", "processed_dir": str(collect.partner_dir / "processed")}
    return collect.config(job, destinations={"sftp": {"dest": dest}})


def _identity(config: Config, collect: Collect, message: CollectFile) -> FileIdentity:
    job = config.collect_job(collect.name)
    assert job is not None
    return identity_of("partner", job, message.name, message.size, message.mtime)


def _checkpoint(config: Config, collect: Collect, name: str) -> Checkpoint | None:
    return checkpoint.read(config.state_bucket_name, checkpoint_name(collect.name, DEST, f"{collect.folder}/{name}"))


def _claim_owner(config: Config, collect: Collect, identity: FileIdentity) -> str | None:
    held = gcs.read_json(config.state_bucket_name, f"{state.prefix(collect.name)}claims/{identity.key}.json")
    return None if held is None else str(held["owner"])


def _copy_in_steps(
    config: Config, collect: Collect, message: CollectFile, between: Callable[[CollectFile], None], *, stop: int = 50
) -> tuple[list[str], CollectFile]:
    """copy_file with a 0 s budget, fed each continuation (exactly one per paused invocation)
    until it settles or ``stop`` invocations ran; ``between`` checks the state in between.
    Returns the outcomes and the last message handled."""
    outcomes = [copy_file(config, message, budget_s=0.0)]
    while outcomes[-1] == "continuing" and len(outcomes) < stop:
        between(message)
        [message] = collect.published_files()  # the continuation: the same file message
        outcomes.append(copy_file(config, message, budget_s=0.0))
    return outcomes, message


def test_a_copy_longer_than_its_budget_arrives_whole_once_across_invocations(collect: Collect, user_folder) -> None:  # type: ignore[no-untyped-def]
    target = user_folder("dest")
    config = _config(collect, target)
    data = os.urandom(SIZE)
    collect.write("big.bin", data)
    collect.list(config)
    [listed] = collect.published_files()
    identity = _identity(config, collect, listed)
    landed = target / collect.folder / "big.bin"
    saved_last: list[Checkpoint] = []

    def between(message: CollectFile) -> None:
        assert message == listed
        assert not landed.exists()  # never visible half-written
        assert (collect.partner_dir / "big.bin").exists()  # no post-action before the verified copy
        assert _claim_owner(config, collect, identity) == listed.run_id  # held across invocations
        saved = _checkpoint(config, collect, "big.bin")
        assert saved is not None and 0 < saved.bytes_done < SIZE
        assert (saved.size, saved.generation) == (SIZE, listed.mtime)
        assert collect.results() == []  # the run is not over
        saved_last[:] = [saved]

    outcomes, _ = _copy_in_steps(config, collect, listed, between)

    assert len(outcomes) >= 3 and outcomes[-1] == "collected"
    assert set(outcomes[:-1]) == {"continuing"}
    [last] = saved_last
    assert last.invocations == len(outcomes) - 1
    assert last.bytes_sent + (SIZE - last.bytes_done) == SIZE  # no chunk was sent twice
    assert landed.read_bytes() == data
    assert sorted(p.name for p in landed.parent.iterdir()) == ["big.bin"]  # one copy, no partial
    assert not (collect.partner_dir / "big.bin").exists()
    assert (collect.partner_dir / "processed" / "big.bin").read_bytes() == data  # moved, once
    assert _checkpoint(config, collect, "big.bin") is None  # forgotten
    assert _claim_owner(config, collect, identity) is None  # released
    record = state.copy_record(config.state_bucket_name, collect.name, identity, DEST)
    assert record is not None and record.sha1 == hashlib.sha1(data).hexdigest()
    assert record.md5 == hashlib.md5(data).hexdigest()
    assert [(r.status, r.files_expected, r.bytes_present) for r in collect.results()] == [(Status.IN_SYNC, 1, SIZE)]
    assert collect.published_files() == []  # nothing left to continue
    assert copy_file(config, listed, budget_s=0.0) == "already"  # a late redelivery does nothing


def test_a_source_changed_between_invocations_is_copied_again_from_the_start(collect: Collect, user_folder) -> None:  # type: ignore[no-untyped-def]
    target = user_folder("dest")
    config = _config(collect, target)
    old, new = os.urandom(SIZE), os.urandom(SIZE + 1000)
    path = collect.write("big.bin", old)
    collect.list(config)
    [listed] = collect.published_files()
    old_identity = _identity(config, collect, listed)

    outcomes, continuation = _copy_in_steps(config, collect, listed, lambda m: None, stop=2)
    assert outcomes == ["continuing", "continuing"]
    [continuation] = collect.published_files()
    assert _checkpoint(config, collect, "big.bin") is not None

    path.write_bytes(new)  # the partner replaces the file between two invocations
    stamp = int(path.stat().st_mtime) - 3600
    os.utime(path, (stamp, stamp))
    assert copy_file(config, continuation, budget_s=0.0) == "changed"
    assert _checkpoint(config, collect, "big.bin") is None  # dropped: nothing resumes the old version
    assert _claim_owner(config, collect, old_identity) is None
    assert collect.published_files() == []

    collect.list(config)  # the next run lists the new version
    [relisted] = collect.published_files()
    assert (relisted.size, relisted.mtime) == (len(new), stamp)
    outcomes, _ = _copy_in_steps(config, collect, relisted, lambda m: None)
    assert len(outcomes) >= 3 and outcomes[-1] == "collected"
    landed = target / collect.folder / "big.bin"
    assert landed.read_bytes() == new
    assert sorted(p.name for p in landed.parent.iterdir()) == ["big.bin"]
    assert (collect.partner_dir / "processed" / "big.bin").read_bytes() == new
    assert not state.is_done(config.state_bucket_name, collect.name, old_identity)


def test_a_checkpoint_of_another_version_is_not_resumed(collect: Collect, user_folder) -> None:  # type: ignore[no-untyped-def]
    """The old version's checkpoint left behind (its continuation lost): the new version's copy
    sees a different size and mtime, drops it and starts from the first byte."""
    target = user_folder("dest")
    config = _config(collect, target)
    old, new = os.urandom(SIZE), os.urandom(SIZE - 1000)
    path = collect.write("big.bin", old)
    collect.list(config)
    [listed] = collect.published_files()
    assert copy_file(config, listed, budget_s=0.0) == "continuing"
    collect.published_files()  # the continuation is lost
    stale = _checkpoint(config, collect, "big.bin")
    assert stale is not None and stale.size == SIZE

    path.write_bytes(new)
    stamp = int(path.stat().st_mtime) - 3600
    os.utime(path, (stamp, stamp))
    collect.list(config)
    [relisted] = collect.published_files()
    assert copy_file(config, relisted, budget_s=0.0) == "continuing"
    fresh = _checkpoint(config, collect, "big.bin")
    assert fresh is not None and (fresh.size, fresh.generation, fresh.invocations) == (len(new), stamp, 1)
    [continuation] = collect.published_files()
    outcomes, _ = _copy_in_steps(config, collect, continuation, lambda m: None)
    assert outcomes[-1] == "collected"
    assert (target / collect.folder / "big.bin").read_bytes() == new


def test_a_budgeted_copy_to_drive_and_sftp_carries_its_labels_and_finishes_each_once(  # type: ignore[no-untyped-def]
    collect: Collect, user_folder
) -> None:
    from tests.collect.test_drive_identity import drive_items

    target = user_folder("dest")
    dest = {**partner_fields(collect.sshd), "directory": str(target)}
    processed = collect.partner_dir / "processed"
    job = {"destinations": ["sftp:dest", "drive:reports"], "post_action": "move", "processed_dir": str(processed)}
    config = collect.config(job, destinations={"sftp": {"dest": dest}})
    data = os.urandom(900_000)  # four 256 KiB chunks at Drive, one at SFTP
    collect.write("mid.bin", data)
    collect.list(config)
    [listed] = collect.published_files()
    identity = _identity(config, collect, listed)

    outcomes, _ = _copy_in_steps(config, collect, listed, lambda m: None)

    assert len(outcomes) >= 3 and outcomes[-1] == "collected"
    assert (target / collect.folder / "mid.bin").read_bytes() == data
    items = drive_items(config, collect.folder)
    assert list(items) == ["mid.bin"]  # one copy
    assert items["mid.bin"]["md5Checksum"] == hashlib.md5(data).hexdigest()
    assert items["mid.bin"]["appProperties"]["offsite_size"] == str(len(data))  # labelled as put_labelled does
    assert (processed / "mid.bin").read_bytes() == data and not (collect.partner_dir / "mid.bin").exists()
    for name in ("sftp:dest", "drive:reports"):
        assert state.copy_record(config.state_bucket_name, collect.name, identity, name) is not None


def test_a_claim_lease_shorter_than_one_invocations_copy_is_a_config_error(collect: Collect) -> None:
    raw = collect.raw(collect={"lease_minutes": 8}, delivery={"budget_s": 480})
    with pytest.raises(
        ConfigError, match=r"collect\.lease_minutes: 8 is shorter than one invocation's copy .* at least 9"
    ):
        from_dict(Config, raw)
    assert from_dict(Config, collect.raw(collect={"lease_minutes": 9}, delivery={"budget_s": 480}))
