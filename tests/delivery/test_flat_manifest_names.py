"""A flat partner (``flat: true``) keeps every table of a run in one folder: each table's manifest
copy has a name of its own there, and a restore by run id finds the table it is asked for."""

from __future__ import annotations

import uuid

import pytest

from shared.config import Destinations
from shared.destinations import factory
from shared.errors import PermanentError
from shared.gcp import clients, gcs
from shared.ids import DestinationId, Stage
from shared.layout import RunFolder, default_file_name, remote_folder, remote_manifest_name
from shared.messages import Source
from shared.restore.locate import find_run
from shared.stages.deliver import handler_for
from tests.run_folders import run_manifest, start_run
from tests.sftp import delivery_kit
from tests.sftp.delivery_kit import DAY, finalize_event, shard

stack, config, receipts = delivery_kit.stack, delivery_kit.config, delivery_kit.receipts
FLAT = DestinationId("sftp", "flat")


def _table_run(config, run_id: str, table: str, size: int) -> tuple[RunFolder, list[dict]]:  # type: ignore[no-untyped-def]
    """One table of the run: ``_run.json``, one data file, then its manifest (the export's order)."""
    source = Source(mode="table", project=config.project, dataset="sales", table=table)
    folder = start_run(
        config.bucket, config.export_prefix, source, DAY, run_id, (str(FLAT),), default_file_name(table, "PARQUET")
    )
    name, data = shard(table), bytes([65 + size % 26]) * size
    generation = gcs.write(config.bucket, folder.prefix + name, data).generation
    manifest = run_manifest(config.bucket, folder, {name: data}, {name: generation}, (str(FLAT),))
    gcs.write(config.bucket, folder.manifest_name, manifest.to_json(), "application/json", if_generation_match=0)
    blob = clients.storage_client().bucket(config.bucket).get_blob(folder.prefix + name)
    return folder, [finalize_event(dict(blob._properties))]


def test_each_table_of_a_run_keeps_its_own_manifest_copy_at_a_flat_partner(stack, config, receipts) -> None:  # type: ignore[no-untyped-def]
    root = stack.sftp.directory / f"flat-{uuid.uuid4().hex[:8]}"  # created by the first delivery
    local = config.destinations.sftp["local"]
    flat = local.model_copy(update={"flat": True, "directory": str(root)})
    config = config.model_copy(
        update={"destinations": Destinations(box=None, sftp={**config.destinations.sftp, "flat": flat})}
    )
    run_id = f"r{uuid.uuid4().hex[:12]}"
    transfer_sftp = handler_for(Stage.TRANSFER_SFTP)
    folders = {}
    for table, size in (("orders", 3000), ("customers", 1000)):
        folders[table], events = _table_run(config, run_id, table, size)
        for event in events:
            transfer_sftp(event, config)

    copies = sorted(p.name for p in root.iterdir() if p.name.startswith("_manifest"))
    assert copies == [f"_manifest_{run_id}_sales.customers.json", f"_manifest_{run_id}_sales.orders.json"]
    for table, folder in folders.items():
        sealed = gcs.read_bytes(config.bucket, folder.delivered_manifest_name)
        assert (root / f"_manifest_{run_id}_sales.{table}.json").read_bytes() == sealed
    # a copy delivered before copies were named by table: the table's own copy is preferred
    (root / f"_manifest_{run_id}.json").write_bytes(
        gcs.read_bytes(config.bucket, folders["orders"].delivered_manifest_name)
    )
    with factory.opened(FLAT, config) as destination:
        found = find_run(destination, run_id, "sales.orders")
        assert (found.manifest.source.table, found.manifest_path) == ("orders", f"_manifest_{run_id}_sales.orders.json")
        with pytest.raises(PermanentError, match="several tables"):
            find_run(destination, run_id)


def test_a_query_run_at_a_flat_partner_keeps_its_run_named_copy() -> None:
    """One export per run id: no other source shares the name, so copies delivered before stay valid."""
    run = RunFolder("exports", Source(mode="query", project="p", export="product_data"), DAY, "r1")
    folder = remote_folder("flat", run, "Product_{YYYYMMDD}-*.csv.gz")
    assert remote_manifest_name(folder, "r1") == "_manifest_r1.json"
