from __future__ import annotations

import datetime as dt

from shared.layout import (
    RunFolder,
    default_file_name,
    is_data_file,
    parse_object_name,
    remote_folder,
    render_file_name,
    shard_name,
)
from shared.messages import Source

DAY = dt.date(2025, 1, 8)
TABLE = Source(mode="table", project="p", dataset="sales", table="orders")
QUERY = Source(mode="query", project="p", export="product_data")


def test_run_folder_prefixes() -> None:
    assert RunFolder("exports", TABLE, DAY, "r1").prefix == "exports/sales/orders/20250108/r1/"
    assert (
        RunFolder("exports", QUERY, DAY, "r1").manifest_name
        == "exports/_queries/product_data/20250108/r1/_manifest.json"
    )


def test_parse_object_name_round_trips() -> None:
    run = RunFolder("exports", TABLE, DAY, "r1")
    parsed = parse_object_name(run.prefix + "orders_20250108-000000000001.parquet", "exports", "p")
    assert parsed == (run, "orders_20250108-000000000001.parquet")
    q = RunFolder("exports", QUERY, DAY, "r2")
    assert parse_object_name(q.run_name, "exports", "p") == (q, "_run.json")


def test_a_dataset_id_starting_with_a_digit_is_a_run_folder_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """BigQuery dataset ids may start with a digit (`2024_sales`): the config takes it, and its run
    files route back to their run (before: refused by the config, and its files ignored)."""
    from tests.unit.config_files import load

    config = load(tmp_path, "project: p\nbucket: my-bucket\ndatasets:\n  - name: 2024_sales\n")
    assert [d.name for d in config.datasets] == ["2024_sales"]
    run = RunFolder("exports", Source(mode="table", project="p", dataset="2024_sales", table="orders"), DAY, "r1")
    assert parse_object_name(run.prefix + "orders_20250108-000000000000.parquet", "exports", "p") == (
        run,
        "orders_20250108-000000000000.parquet",
    )


def test_parse_object_name_rejects_foreign_objects() -> None:
    for name in (
        "other/sales/orders/20250108/r1/x",
        "exports/sales/orders/2025-01-08/r1/x",
        "exports/sales/orders/20250108/r1/",
        "exports/sales/20250108/r1/x",
        "exports/sa;les/orders/20250108/r1/x",
    ):
        assert parse_object_name(name, "exports") is None, name


def test_file_names_follow_bigquery_sharding() -> None:
    pattern = render_file_name("Product_{YYYYMMDD}-*.csv.gz", date=DAY)
    assert pattern == "Product_20250108-*.csv.gz"
    assert shard_name(pattern, 3) == "Product_20250108-000000000003.csv.gz"
    assert (
        render_file_name(default_file_name("orders", "PARQUET"), date=DAY, table="orders")
        == "orders_20250108-*.parquet"
    )
    assert is_data_file("orders_20250108-000000000000.parquet") and not is_data_file("_manifest.json")


def test_remote_folders_per_destination() -> None:
    run = RunFolder("exports", TABLE, DAY, "r1")
    box = remote_folder("gcp_tree", run, default_file_name("orders", "PARQUET"))
    assert box.path == "GCP/bigquery/sales/orders/20250108/r1" and box.exclusive
    sftp = remote_folder("nested", run, default_file_name("orders", "PARQUET"))
    assert sftp.path == "sales/orders/20250108/r1"
    q = RunFolder("exports", QUERY, DAY, "r2")
    qbox = remote_folder("gcp_tree", q, "Product_{YYYYMMDD}-*.csv.gz")
    assert qbox.path == "GCP/exports/product_data/20250108" and not qbox.exclusive
    assert qbox.owns("Product_20250108-000000000000.csv.gz") and not qbox.owns("Product_20250107-000000000000.csv.gz")
    flat = remote_folder("flat", q, "Product_{YYYYMMDD}-*.csv.gz")
    assert flat.path == "" and flat.owns("Product_20250108-000000000009.csv.gz") and not flat.owns("notes.txt")
