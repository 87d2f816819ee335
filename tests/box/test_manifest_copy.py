"""The run's manifest follows its data files to Box (shared/delivery/manifest_copy.py), on the
local Box API server and the GCS emulator, whichever event comes last."""

from __future__ import annotations

import datetime as dt
import hashlib

from shared.gcp import gcs
from shared.layout import MANIFEST_NAME, RunFolder, yyyymmdd
from shared.manifest import Manifest, ManifestFile
from shared.messages import TableExport
from tests.box.pipeline import ExportedFile, Pipeline


def write_manifest(pipeline: Pipeline, run: TableExport, files: list[ExportedFile]) -> ExportedFile:
    """The manifest export_table writes last, listing ``files``."""
    manifest = Manifest(
        run_id=run.run_id, source=run.source, date=run.date.isoformat(), bucket=pipeline.bucket, prefix=run.prefix,
        format=run.format, compression=None, file_name=run.file_name, destinations=run.destinations, job_id="job",
        row_count=3, schema=[{"name": "id", "type": "INTEGER", "mode": "NULLABLE"}],
        files=tuple(ManifestFile(name=f.name.rsplit("/", 1)[1], object=f.name, size=f.size) for f in files),
        created_at=dt.datetime.now(dt.UTC).isoformat(),
    )  # fmt: skip
    folder = RunFolder(pipeline.config.export_prefix, run.source, run.date, run.run_id)
    return pipeline.put(folder.manifest_name, manifest.to_json())


def delivered_manifest(pipeline: Pipeline, run: TableExport) -> bytes:
    folder = RunFolder(pipeline.config.export_prefix, run.source, run.date, run.run_id)
    data = gcs.read_bytes(pipeline.bucket, folder.delivered_manifest_name)
    assert data is not None
    return data


def box_names(pipeline: Pipeline, folder: str) -> dict[str, str | None]:
    return {f.path.rsplit("/", 1)[1]: f.sha1 for f in pipeline.box().list(folder)}


def test_manifest_waits_for_the_last_data_file_then_follows_it(pipeline: Pipeline) -> None:
    run = pipeline.start_run(dataset="sales", table="orders")
    first = pipeline.put(run.prefix + "orders_20250108-000000000000.parquet", b"first" * 100)
    last = pipeline.put(run.prefix + "orders_20250108-000000000001.parquet", b"last" * 100)
    pipeline.deliver(first)
    manifest = write_manifest(pipeline, run, [first, last])
    folder = f"GCP/bigquery/sales/orders/{yyyymmdd(run.date)}/{run.run_id}"

    pipeline.deliver(manifest)  # its finalize event: one data file is not at Box yet
    assert MANIFEST_NAME not in box_names(pipeline, folder)

    pipeline.deliver(last)  # the last data file's delivery sends the manifest after it
    names = box_names(pipeline, folder)
    assert set(names) == {"orders_20250108-000000000000.parquet", "orders_20250108-000000000001.parquet", MANIFEST_NAME}
    delivered = delivered_manifest(pipeline, run)
    assert names[MANIFEST_NAME] == hashlib.sha1(delivered).hexdigest()  # checked by Box's SHA-1
    # what Box holds is the manifest with each file's SHA-1 (BigQuery's manifest has none)
    assert {f.name: f.sha1 for f in Manifest.from_json(delivered).files} == {
        "orders_20250108-000000000000.parquet": first.sha1,
        "orders_20250108-000000000001.parquet": last.sha1,
    }
    receipts = {r.object: r for r in pipeline.receipts(3)}
    receipt = receipts[
        RunFolder(pipeline.config.export_prefix, run.source, run.date, run.run_id).delivered_manifest_name
    ]
    assert receipt.remote_path == f"{folder}/{MANIFEST_NAME}"
    assert receipt.sha1 == hashlib.sha1(delivered).hexdigest()


def test_manifest_written_after_every_data_file_is_sent_on_its_own_event(pipeline: Pipeline) -> None:
    run = pipeline.start_run(dataset="sales", table="orders")
    only = pipeline.put(run.prefix + "orders_20250108-000000000000.parquet", b"x" * 1000)
    pipeline.deliver(only)
    folder = f"GCP/bigquery/sales/orders/{yyyymmdd(run.date)}/{run.run_id}"
    assert MANIFEST_NAME not in box_names(pipeline, folder)  # no manifest in GCS yet

    manifest = write_manifest(pipeline, run, [only])
    pipeline.deliver(manifest)
    stored = pipeline.box().open(f"{folder}/{MANIFEST_NAME}")
    try:
        assert stored.read() == delivered_manifest(pipeline, run)
    finally:
        stored.close()
    assert Manifest.from_json(delivered_manifest(pipeline, run)).files[0].sha1 == only.sha1


def test_query_export_manifest_is_named_by_run_in_the_shared_dated_folder(pipeline: Pipeline) -> None:
    run = pipeline.start_run(export="products_daily")
    data = pipeline.put(run.prefix + "Product_20250108-000000000000.csv.gz", b"csv" * 50)
    manifest = write_manifest(pipeline, run, [data])
    pipeline.deliver(data)
    names = box_names(pipeline, "GCP/exports/products_daily/20250108")
    copy_sha1 = hashlib.sha1(delivered_manifest(pipeline, run)).hexdigest()
    assert names == {"Product_20250108-000000000000.csv.gz": data.sha1, f"_manifest_{run.run_id}.json": copy_sha1}
    assert manifest.name.endswith("/_manifest.json")
