"""upload_box end to end on real components: GCS emulator → handler → local Box API → receipts."""

from __future__ import annotations

import math
from pathlib import Path

from shared.layout import yyyymmdd
from tests.box.pipeline import Pipeline

MB = 1_000_000


def run_folder(run) -> str:
    return f"GCP/bigquery/{run.source.dataset}/{run.source.table}/{yyyymmdd(run.date)}/{run.run_id}"


def test_export_lands_in_the_seed_tree_with_matching_sha1(pipeline: Pipeline, scratch: Path) -> None:
    run = pipeline.start_run(dataset="sales", table="orders")
    sizes = {"1kb": 1_000, "just_below": 19_900_000, "threshold": 20 * MB, "big": 120 * MB}
    exported = {
        label: pipeline.put_random(run, f"orders_20250108-{i:012d}.parquet", size, scratch)
        for i, (label, size) in enumerate(sizes.items())
    }
    for item in exported.values():
        pipeline.deliver(item)

    box = pipeline.box()
    # seed 000's tree: ROOT/GCP/bigquery/{dataset}/{table}/{YYYYMMDD}/{run_id}/
    assert [e["name"] for e in box.entries("")] == ["GCP"]
    assert [e["name"] for e in box.entries("GCP")] == ["bigquery"]
    assert [e["name"] for e in box.entries("GCP/bigquery/sales/orders")] == ["20250108"]
    listed = {f.path.rsplit("/", 1)[1]: f for f in box.list(run_folder(run))}
    assert {f.path for f in listed.values()} == {
        f"{run_folder(run)}/{i.name.rsplit('/', 1)[1]}" for i in exported.values()
    }
    for item in exported.values():
        remote = listed[item.name.rsplit("/", 1)[1]]
        assert remote.size == item.size
        assert remote.sha1 == item.sha1  # Box's SHA-1 of what it stored == SHA-1 of the GCS bytes
        assert pipeline.metadata(item.name)["sha1"] == item.sha1

    receipts = {r.object: r for r in pipeline.receipts(len(exported))}
    assert set(receipts) == {i.name for i in exported.values()}
    for item in exported.values():
        receipt = receipts[item.name]
        assert (receipt.destination, receipt.status, receipt.run_id) == ("box", "uploaded", run.run_id)
        assert (receipt.size, receipt.sha1, receipt.generation, receipt.bucket) == (
            item.size,
            item.sha1,
            item.generation,
            pipeline.bucket,
        )
        assert receipt.remote_path == f"{run_folder(run)}/{item.name.rsplit('/', 1)[1]}"
        assert receipt.remote_id == listed[item.name.rsplit("/", 1)[1]].remote_id

    # below the threshold: preflight + one multipart upload; at/above: sessions with parts
    log = pipeline.box_server.requests()["counts"]
    assert log.get("upload_file") == 2
    assert log.get("preflight_upload", 0) >= 2
    assert log.get("create_upload_session") == 2
    assert log.get("commit", 0) >= 2
    part_size = 8 * 1024 * 1024
    assert log.get("upload_part") == math.ceil(20 * MB / part_size) + math.ceil(120 * MB / part_size)


def test_redelivered_event_adds_no_file_and_no_version(pipeline: Pipeline, scratch: Path) -> None:
    run = pipeline.start_run()
    small = pipeline.put_random(run, "orders_20250108-000000000000.parquet", 5_000, scratch)
    large = pipeline.put_random(run, "orders_20250108-000000000001.parquet", 21 * MB, scratch)
    first_small, first_large = pipeline.event(small), pipeline.event(large)
    pipeline.deliver(first_small)
    pipeline.deliver(first_large)
    before = pipeline.box_server.requests()["counts"]

    pipeline.deliver(first_small)  # the same events again (Eventarc redelivery)
    pipeline.deliver(first_large)

    after = pipeline.box_server.requests()["counts"]
    # the recorded sha1 lets the second delivery skip without sending a byte
    for operation in (
        "upload_file",
        "upload_file_version",
        "create_upload_session",
        "create_upload_session_version",
        "upload_part",
    ):
        assert after.get(operation, 0) == before.get(operation, 0), operation
    files = list(pipeline.box().list(run_folder(run)))
    assert len(files) == 2
    for remote in files:
        assert pipeline.versions(remote.remote_id) == []
    statuses = sorted((r.object.rsplit("-", 1)[1], r.status) for r in pipeline.receipts(4))
    assert statuses == [
        ("000000000000.parquet", "unchanged"),
        ("000000000000.parquet", "uploaded"),
        ("000000000001.parquet", "unchanged"),
        ("000000000001.parquet", "uploaded"),
    ]


def test_events_out_of_order_and_stale_generations(pipeline: Pipeline) -> None:
    run = pipeline.start_run()
    name_a = run.prefix + "orders_20250108-000000000000.parquet"
    name_b = run.prefix + "orders_20250108-000000000001.parquet"
    a = pipeline.put(name_a, b"A" * 3000)
    b_old = pipeline.put(name_b, b"old bytes of b")
    event_b_old = pipeline.event(b_old)
    b_new = pipeline.put(name_b, b"new bytes of b, longer")  # the object is replaced
    event_a, event_b_new = pipeline.event(a), pipeline.event(b_new)

    for event in (event_b_new, event_a, event_b_old, event_a, event_b_new, event_b_old):
        pipeline.deliver(event)

    files = {f.path.rsplit("/", 1)[1]: f for f in pipeline.box().list(run_folder(run))}
    assert sorted(files) == ["orders_20250108-000000000000.parquet", "orders_20250108-000000000001.parquet"]
    assert files["orders_20250108-000000000001.parquet"].sha1 == b_new.sha1  # the stale generation never landed
    assert files["orders_20250108-000000000000.parquet"].sha1 == a.sha1
    for remote in files.values():
        assert pipeline.versions(remote.remote_id) == []
    receipts = pipeline.receipts(4)
    assert sorted((r.object, r.generation, r.status) for r in receipts) == sorted(
        [
            (name_a, a.generation, "uploaded"),
            (name_a, a.generation, "unchanged"),
            (name_b, b_new.generation, "uploaded"),
            (name_b, b_new.generation, "unchanged"),
        ]
    )
    assert pipeline.no_more_receipts() == []


def test_changed_bytes_become_a_new_version(pipeline: Pipeline, scratch: Path) -> None:
    import io

    run = pipeline.start_run()
    box = pipeline.box()
    small_name, large_name = "orders_20250108-000000000000.parquet", "orders_20250108-000000000001.parquet"
    box.put(f"{run_folder(run)}/{small_name}", io.BytesIO(b"what an older export left"), 25)
    older_large = scratch / "older.bin"
    from tests.box.pipeline import random_file

    random_file(older_large, 20 * MB)
    with open(older_large, "rb") as stream:
        box.put(f"{run_folder(run)}/{large_name}", stream, 20 * MB)

    small = pipeline.put(run.prefix + small_name, b"the bytes of this export")
    large = pipeline.put_random(run, large_name, 20 * MB, scratch)
    pipeline.deliver(small)
    pipeline.deliver(large)

    files = {f.path.rsplit("/", 1)[1]: f for f in box.list(run_folder(run))}
    assert files[small_name].sha1 == small.sha1 and files[large_name].sha1 == large.sha1
    assert len(pipeline.versions(files[small_name].remote_id)) == 1
    assert len(pipeline.versions(files[large_name].remote_id)) == 1
    assert sorted(r.status for r in pipeline.receipts(2)) == ["new_version", "new_version"]
    assert pipeline.box_server.requests()["counts"].get("create_upload_session_version") == 1


def test_query_exports_go_to_the_dated_exports_folder(pipeline: Pipeline) -> None:
    run = pipeline.start_run(export="product_data", file_name="Product_{YYYYMMDD}-*.csv.gz")
    item = pipeline.put(run.prefix + "Product_20250108-000000000000.csv.gz", b"id,name\n1,x\n")
    pipeline.deliver(item)
    (remote,) = pipeline.box().list("GCP/exports/product_data/20250108")
    assert remote.path == "GCP/exports/product_data/20250108/Product_20250108-000000000000.csv.gz"
    assert remote.sha1 == item.sha1
    (receipt,) = pipeline.receipts(1)
    assert receipt.remote_path == remote.path


def test_objects_that_are_not_box_deliveries_are_ignored(pipeline: Pipeline) -> None:
    routed_elsewhere = pipeline.start_run(table="invoices", destinations=("sftp:local",))
    to_box = pipeline.start_run(table="orders")
    candidates = [
        pipeline.put(routed_elsewhere.prefix + "invoices_20250108-000000000000.parquet", b"for sftp only"),
        pipeline.put(to_box.prefix + "_manifest.json", b"{}"),
        pipeline.put(to_box.prefix + "_run.json.bak", b"{}"),  # control-file prefix '_'
        pipeline.put("exports/sales/orders/20250108/no-run-json-here/x.parquet", b"no _run.json next to me"),
        pipeline.put("elsewhere/file.parquet", b"not under the export prefix"),
    ]
    for item in candidates:
        pipeline.deliver(item)
    assert list(pipeline.box().list("")) == []
    assert pipeline.no_more_receipts() == []


def test_a_metadata_patch_while_reading_does_not_lose_the_delivery(pipeline: Pipeline) -> None:
    """On fake-gcs-server a metadata patch (the SFTP function recording its sha1) makes a new
    generation of the same bytes; a delivery reading the old one reads again instead of giving up."""
    import threading

    from shared.gcp import gcs

    run = pipeline.start_run()
    item = pipeline.put(run.prefix + "orders_20250108-000000000000.parquet", b"p" * 70_000)
    event = pipeline.event(item)
    server = pipeline.box_server
    server.add_fault("preflight_upload", "delay", seconds=1.0, count=1)  # the stream is open, nothing read yet

    def patch_when_preflight_arrives() -> None:
        while not server.requests("preflight_upload")["requests"]:
            threading.Event().wait(0.02)
        gcs.set_metadata(pipeline.bucket, item.name, {"sftp": "done"})

    patcher = threading.Thread(target=patch_when_preflight_arrives)
    patcher.start()
    pipeline.deliver(event)
    patcher.join()

    live = gcs.stat(pipeline.bucket, item.name)
    assert live is not None and live.generation != item.generation, "the emulator no longer re-generates on patch"
    (remote,) = pipeline.box().list(run_folder(run))
    assert remote.sha1 == item.sha1
    (receipt,) = pipeline.receipts(1)
    assert receipt.status == "uploaded" and receipt.generation == item.generation
    assert live.metadata == {"sftp": "done", "sha1": item.sha1, "sha1-of": f"{live.size}:{live.crc32c}"}
