"""A same-day rerun of a query export with fewer shards, on the stack's real SFTP server and Box API.

Query exports share one destination folder per day, so the earlier run's last shard stays
behind; verify of the newer run removes it (and says so) instead of reporting an ``extra`` for
ever. Files no run of that day exported, and verifications of the older run, delete nothing.
The real upload functions deliver (run in this process), receipts are fed to verify.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import uuid

import pytest
from typer.testing import CliRunner

from offsite.cli import app
from shared.destinations import factory
from shared.gcp import gcs
from shared.layout import remote_folder
from shared.messages import Source
from shared.runtime import config
from shared.verify.recheck import recheck
from tests.run_folders import run_manifest, start_run
from tests.verify.conftest import DAY, Run, VerifyStack

pytestmark = pytest.mark.stack

TEMPLATE = "Orders_{YYYYMMDD}-*.csv.gz"
SHARD = "Orders_20250108-{:012d}.csv.gz"


def query_run(vstack: VerifyStack, shards: int, destination: str) -> Run:
    """A finished run of this test's query export for DAY with ``shards`` files. The export is named
    after the test's prefix: destination folders are per export and day, and the stack is shared."""
    export = "q_" + vstack.export_prefix.replace("-", "_")
    source = Source(mode="query", project=vstack.info.project, export=export)
    run_id = "r" + uuid.uuid4().hex[:12]
    folder = start_run(vstack.bucket, vstack.export_prefix, source, DAY, run_id, (destination,), TEMPLATE)
    run = Run(folder, {SHARD.format(i): os.urandom(20_000 + i) for i in range(shards)}, (destination,))
    for name, data in run.files.items():
        run.generations[name] = gcs.write(vstack.bucket, folder.prefix + name, data).generation
    manifest = run_manifest(vstack.bucket, folder, run.files, run.generations, run.destinations)
    run.manifest = dataclasses.replace(manifest, file_name=TEMPLATE, format="CSV", compression="GZIP")
    gcs.write(vstack.bucket, folder.manifest_name, run.manifest.to_json(), "application/json")
    return run


def deliver(vstack: VerifyStack, run: Run) -> None:
    for name in sorted(run.files):
        vstack.upload(run, name)
    # + the manifest copy after the data files; in this shared folder a rerun's copy may also go
    # out early (the earlier run's same-named shard has the same size) and again after the last
    # data file, with the same bytes: one receipt more
    assert vstack.pump_receipts() in (len(run.files) + 1, len(run.files) + 2)


def remote_names(vstack: VerifyStack, run: Run, destination: str) -> dict[str, int]:
    """Name → size of every file in the run's (shared, dated) destination folder."""
    with factory.opened(destination, vstack.config) as dest:
        folder = remote_folder(dest.abilities.layout, run.folder, TEMPLATE)
        assert not folder.exclusive
        return {f.path.rsplit("/", 1)[-1]: f.size for f in dest.list(folder.path)}


def put_remote(vstack: VerifyStack, run: Run, destination: str, name: str, data: bytes) -> None:
    with factory.opened(destination, vstack.config) as dest:
        folder = remote_folder(dest.abilities.layout, run.folder, TEMPLATE)
        dest.put(f"{folder.path}/{name}", io.BytesIO(data), len(data))


def put_partial(vstack: VerifyStack, run: Run, destination: str, name: str, data: bytes) -> None:
    """An upload in progress on the SFTP server: ``name`` + the partial suffix, written raw (a put
    of a name with that suffix is refused)."""
    with factory.opened(destination, vstack.config) as dest:
        folder = remote_folder(dest.abilities.layout, run.folder, TEMPLATE)
        path = dest.remote_path(f"{folder.path}/{name}{dest.abilities.partial_suffix}")
        with dest.pool.session() as session, session.sftp.open(path, "w") as out:
            out.write(data)


def run_and_rerun(vstack: VerifyStack, destination: str) -> tuple[Run, Run]:
    """A run of 3 shards delivered and in sync, then a rerun of the same export and day with 2, delivered."""
    first = query_run(vstack, 3, destination)
    deliver(vstack, first)
    assert [r.status for r in vstack.results_for(first)] == ["in_sync"]
    rerun = query_run(vstack, 2, destination)
    deliver(vstack, rerun)
    return first, rerun


@pytest.mark.parametrize("destination", ["sftp:local", "box"])
def test_a_rerun_with_fewer_shards_leaves_no_stale_shard(vstack: VerifyStack, destination: str) -> None:
    _first, rerun = run_and_rerun(vstack, destination)
    (result,) = vstack.results_for(rerun)
    assert result.status == "in_sync" and result.extra == []
    assert f"removed 1 file(s) a superseded run of the same day left: {SHARD.format(2)}" in (result.reason or "")
    remote = remote_names(vstack, rerun, destination)
    own_manifest = f"_manifest_{rerun.run_id}.json"  # the rerun's copy; the superseded run's is removed
    assert set(remote) == set(rerun.files) | {own_manifest}
    assert {n: remote[n] for n in rerun.files} == {n: len(d) for n, d in rerun.files.items()}

    vstack.request({"run_id": rerun.run_id})  # nothing left to remove: plainly in sync
    again = vstack.results_for(rerun)[-1]
    assert again.status == "in_sync" and "removed" not in (again.reason or "")


def test_only_files_of_an_older_run_are_removed_and_only_by_the_newest_run(vstack: VerifyStack) -> None:
    destination = "sftp:local"
    first, rerun = run_and_rerun(vstack, destination)
    assert [r.status for r in vstack.results_for(rerun)] == ["in_sync"]

    partners_own = SHARD.format(9)  # matches the run's pattern; no run of the day exported it
    put_remote(vstack, rerun, destination, partners_own, b"the partner's own file")
    vstack.request({"run_id": rerun.run_id})
    result = vstack.results_for(rerun)[-1]
    assert result.status == "mismatch" and result.extra == [partners_own]
    assert partners_own in remote_names(vstack, rerun, destination)

    # The superseded run, verified later, deletes nothing of the newer run's (nor anything else).
    before = remote_names(vstack, rerun, destination)
    vstack.request({"run_id": first.run_id})
    old = vstack.results_for(first)[-1]
    assert old.status == "mismatch" and SHARD.format(2) in old.missing
    assert remote_names(vstack, rerun, destination) == before


def test_the_daily_recheck_skips_a_run_replaced_by_a_same_day_rerun(vstack: VerifyStack) -> None:
    destination = "sftp:local"
    first, rerun = run_and_rerun(vstack, destination)
    summary = recheck(config(), now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    assert summary.checked == 1 and summary.mismatches == 0  # the rerun only: still in sync
    assert [r.status for r in vstack.results_for(first)] == ["in_sync"]  # no recheck mismatch for the replaced run


def test_a_rerun_verified_mid_upload_keeps_its_own_partial_file(vstack: VerifyStack) -> None:
    """The rerun's upload of shard 0 is in progress (a .partial): an older run exported shard 0 too,
    yet that .partial is the rerun's own, not a leftover. Only the older run's files go."""
    destination = "sftp:local"
    first = query_run(vstack, 3, destination)
    deliver(vstack, first)
    rerun = query_run(vstack, 2, destination)
    put_partial(vstack, rerun, destination, SHARD.format(0), b"x" * 5000)
    vstack.request({"run_id": rerun.run_id})
    remote = remote_names(vstack, rerun, destination)
    partial = SHARD.format(0) + ".partial"
    assert partial in remote, "verify deleted the run's own upload in progress"
    assert SHARD.format(2) not in remote and f"_manifest_{first.run_id}.json" not in remote
    result = vstack.results_for(rerun)[-1]
    assert f"removed 1 file(s) a superseded run of the same day left: {SHARD.format(2)}" in (result.reason or "")
    assert partial in result.extra


def test_offsite_verify_lists_what_verify_would_remove_and_removes_nothing(vstack: VerifyStack) -> None:
    destination = "sftp:local"
    first = query_run(vstack, 3, destination)
    deliver(vstack, first)
    rerun = query_run(vstack, 2, destination)  # exported; its delivery just starting
    put_partial(vstack, rerun, destination, SHARD.format(0), b"x" * 5000)
    before = remote_names(vstack, rerun, destination)

    out = CliRunner().invoke(app, ["verify", rerun.run_id, "--destination", destination, "--json"])
    assert out.exit_code == 1, out.output
    assert remote_names(vstack, rerun, destination) == before  # nothing deleted
    [check] = json.loads(out.stdout)
    old_copy = f"_manifest_{first.run_id}.json"
    assert (
        f"would be removed by verify (a superseded run of the same day left them): {SHARD.format(2)}, {old_copy}"
        in (check["reason"] or "")
    )
    assert SHARD.format(2) in check["extra"]  # still there: an extra here and now
    table = CliRunner().invoke(app, ["verify", rerun.run_id, "--destination", destination])
    assert "would be removed by verify" in table.stdout
    assert vstack.results_for(rerun) == []  # and nothing published


def test_the_recheck_still_checks_a_run_whose_same_day_rerun_never_finished(vstack: VerifyStack) -> None:
    """A newer run of the day that started but never wrote a manifest holds no folder: the earlier
    run is rechecked (and its removals made) as the newest run of the day."""
    destination = "sftp:local"
    first = query_run(vstack, 3, destination)
    deliver(vstack, first)
    assert [r.status for r in vstack.results_for(first)] == ["in_sync"]
    start_run(
        vstack.bucket,
        vstack.export_prefix,
        first.folder.source,
        DAY,
        "r" + uuid.uuid4().hex[:12],
        (destination,),
        TEMPLATE,
    )
    with factory.opened(destination, vstack.config) as dest:
        folder = remote_folder(dest.abilities.layout, first.folder, TEMPLATE)
        dest.delete(f"{folder.path}/{SHARD.format(1)}")  # the partner loses one of first's files
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    summary = recheck(config(), now=tomorrow)
    assert summary.checked == 1 and summary.mismatches == 1
    [_, recheck_result] = vstack.results_for(first)
    assert (recheck_result.status, recheck_result.stage) == ("mismatch", "verify:recheck")
    assert recheck_result.missing == [SHARD.format(1)]
