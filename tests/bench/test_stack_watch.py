"""The benches' watch on the local stack's Pub/Sub emulator: what it keeps, and what it forgets."""

from __future__ import annotations

import json
import time

from bench.stack_watch import Watch
from devstack.stack import StackInfo
from shared.gcp import pubsub
from shared.topology import DELIVERIES, VERIFY_RESULTS


def _publish(topic: str, run_id: str) -> str:
    return pubsub.publish(topic, json.dumps({"run_id": run_id}).encode(), run_id=run_id)


def _wait_for(watch: Watch, topic: str, count: int) -> None:
    watch.wait(lambda: len(watch.select(topic)) >= count, 30, f"{count} messages on {topic}")


def test_a_watch_keeps_each_topic_apart_and_forgets_earlier_runs(bare_stack_env: StackInfo) -> None:
    with Watch(bare_stack_env, [VERIFY_RESULTS, DELIVERIES]) as watch:
        time.sleep(0.5)  # streaming pulls open
        _publish(VERIFY_RESULTS, "r1")
        _publish(VERIFY_RESULTS, "r1")
        _publish(DELIVERIES, "r1")
        _wait_for(watch, VERIFY_RESULTS, 2)
        _wait_for(watch, DELIVERIES, 1)
        assert [s.data["run_id"] for s in watch.select(VERIFY_RESULTS)] == ["r1", "r1"]
        assert [s.attributes["run_id"] for s in watch.select(DELIVERIES)] == ["r1"]

        watch.forget()
        assert watch.select(VERIFY_RESULTS) == [] and watch.select(DELIVERIES) == []

        _publish(VERIFY_RESULTS, "r2")
        _wait_for(watch, VERIFY_RESULTS, 1)
        assert [s.data["run_id"] for s in watch.select(VERIFY_RESULTS, lambda s: s.data["run_id"] == "r2")] == ["r2"]
        assert watch.select(DELIVERIES) == []


def test_purging_a_run_deletes_its_objects_and_the_folders_fake_gcs_leaves(bare_stack_env: StackInfo) -> None:
    from bench.stack_watch import purge_run
    from devstack.launches import gcs_root
    from shared.gcp import clients

    info = bare_stack_env
    client = clients.storage_client()
    names = {
        run: [f"exports/purge_ds/t1/20261204/{run}/_run.json", f"results/20261204/{run}/sftp:local/x.json"]
        for run in ("purge-r1", "purge-r2")
    }
    for bucket in (info.bucket, info.state_bucket):
        for run_names in names.values():
            for name in run_names:
                client.bucket(bucket).blob(name).upload_from_string(b"{}")

    assert purge_run(info, ["exports/purge_ds/", "results/"], "purge-r1") == 4

    for bucket in (info.bucket, info.state_bucket):
        left = {b.name for b in client.list_blobs(bucket, prefix="exports/purge_ds/")}
        left |= {b.name for b in client.list_blobs(bucket, prefix="results/20261204/purge-")}
        assert left == set(names["purge-r2"])
        tree = gcs_root(info.root) / bucket
        folders = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_dir()}
        assert not any("purge-r1" in f for f in folders)  # no empty folder of the run is left
        assert "exports/purge_ds/t1/20261204/purge-r2" in folders


def test_a_runs_objects_are_the_exports_buckets_only(bare_stack_env: StackInfo) -> None:
    """The state bucket's notifications share the topic; its run index (run-index/{run_id}/…)
    was counted as a data file of the run, one per dataset (the capacity simulation then read
    81 objects and 21 files where the model, rightly, said 80 and 20)."""
    from bench.e2e_bench import _finalized
    from shared.gcp import gcs

    info, run = bare_stack_env, f"fin-{time.monotonic_ns()}"
    with Watch(info, ["gcs-notifications"]) as watch:
        time.sleep(0.5)  # streaming pulls open
        gcs.write(info.bucket, f"exports/fin_ds/t1/20261205/{run}/t1_20261205-000000000000.parquet", b"PAR1")
        gcs.write(info.bucket, f"exports/fin_ds/t1/20261205/{run}/_run.json", b"{}")
        gcs.write(info.state_bucket, f"run-index/{run}/fin_ds-0123456789ab.json", b"{}")

        def mine() -> list[object]:
            return [s for s in watch.select("gcs-notifications") if run in s.attributes.get("objectId", "")]

        watch.wait(lambda: len(mine()) >= 3, 30, "the three finalize notifications")
        assert sorted(name for name, _ in _finalized(watch, run)) == ["_run.json", "t1_20261205-000000000000.parquet"]
