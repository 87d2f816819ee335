"""Sample data for the local stack: a `sales` dataset with tables of different shapes.

- ``orders``: 200,000 flat rows (INT64, DATE, NUMERIC, FLOAT64, STRING, BOOL, TIMESTAMP,
  DATETIME, NULLs), large enough to shard into several files at the local 4 MB shard size;
  ``order_date`` spans January 2025, so the query export ``orders_daily`` has rows every day.
- ``customers``: nested and repeated RECORDs, REPEATED STRING, BYTES, NULL records, text
  that needs CSV quoting (commas, quotes, newlines) and non-ASCII.
- ``products``: a small table with every scalar type plus a RECORD and a REPEATED column.
- ``orders_by_day``: a view (fan_out skips views).

Rows are generated with a fixed seed (identical every time) and loaded as Parquet through
``load_table_from_file(..., size=None)`` — ``load_table_from_json`` is broken on bqemulator.
Seeding recreates the tables, so it is safe to repeat; it takes about a second.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import bigquery

from devstack.bqfront.formats import arrow_schema

ORDERS_ROWS = 200_000
CUSTOMERS_ROWS = 1_000
PRODUCTS_ROWS = 200
FIRST_DAY = dt.date(2025, 1, 1)
DAYS = 31
_F = bigquery.SchemaField

ORDERS_SCHEMA = [
    _F("order_id", "INT64", mode="REQUIRED"),
    _F("order_date", "DATE", mode="REQUIRED"),
    _F("customer_id", "INT64"),
    _F("status", "STRING"),
    _F("amount", "NUMERIC"),
    _F("discount", "FLOAT64"),
    _F("express", "BOOL"),
    _F("created_at", "TIMESTAMP"),
    _F("promised_at", "DATETIME"),
    _F("tracking_code", "STRING"),
    _F("note", "STRING"),
]

CUSTOMERS_SCHEMA = [
    _F("customer_id", "INT64", mode="REQUIRED"),
    _F("name", "STRING"),
    _F("email", "STRING"),
    _F("signup_date", "DATE"),
    _F("vip", "BOOL"),
    _F("balance", "NUMERIC"),
    _F("score", "FLOAT64"),
    _F("avatar", "BYTES"),
    _F("last_login", "TIMESTAMP"),
    _F("tags", "STRING", mode="REPEATED"),
    _F(
        "address",
        "RECORD",
        fields=[
            _F("street", "STRING"),
            _F("city", "STRING"),
            _F("zip", "STRING"),
            _F("geo", "RECORD", fields=[_F("lat", "FLOAT64"), _F("lon", "FLOAT64")]),
        ],
    ),
    _F("phones", "RECORD", mode="REPEATED", fields=[_F("kind", "STRING"), _F("number", "STRING")]),
]

PRODUCTS_SCHEMA = [
    _F("sku", "STRING", mode="REQUIRED"),
    _F("title", "STRING"),
    _F("price", "NUMERIC"),
    _F("weight_kg", "FLOAT64"),
    _F("active", "BOOL"),
    _F("thumbnail", "BYTES"),
    _F("stock", "INT64"),
    _F("released", "DATE"),
    _F("added", "DATETIME"),
    _F("updated_at", "TIMESTAMP"),
    _F("dimensions", "RECORD", fields=[_F("w", "FLOAT64"), _F("h", "FLOAT64"), _F("d", "FLOAT64")]),
    _F("categories", "STRING", mode="REPEATED"),
]

STATUSES = np.array(["new", "paid", "shipped", "delivered", "returned"])
EPOCH_2025 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _where(mask: np.ndarray, values: list[Any]) -> list[Any]:
    return [None if m else v for m, v in zip(mask.tolist(), values, strict=True)]


def orders_table(rows: int = ORDERS_ROWS) -> pa.Table:
    rng = np.random.default_rng(2025)
    ids = np.arange(1, rows + 1, dtype=np.int64)
    day = rng.integers(0, DAYS, rows)
    seconds = day * 86_400 + rng.integers(0, 86_400, rows)
    micros = seconds * 1_000_000 + rng.integers(0, 1_000_000, rows) * (rng.random(rows) < 0.5)
    cents = rng.integers(100, 5_000_000, rows)
    hex_codes = rng.integers(0, 2**63 - 1, (rows, 2), dtype=np.int64)
    codes = [f"{a:016x}{b:016x}" for a, b in hex_codes.tolist()]
    notes = [f'gift, wrap "{i % 97}"' if i % 40 == 0 else None for i in range(rows)]
    base = np.datetime64("2025-01-01T00:00:00", "us")
    return pa.table(
        {
            "order_id": ids,
            "order_date": pa.array((np.datetime64("2025-01-01", "D") + day).astype("datetime64[D]"), pa.date32()),
            "customer_id": pa.array(
                _where(ids % 50 == 0, rng.integers(1, CUSTOMERS_ROWS + 1, rows).tolist()), pa.int64()
            ),
            "status": pa.array(STATUSES[rng.integers(0, len(STATUSES), rows)]),
            "amount": pa.array([decimal.Decimal(c).scaleb(-2) for c in cents.tolist()], pa.decimal128(38, 9)),
            "discount": pa.array(_where(ids % 7 == 0, np.round(rng.random(rows) * 0.3, 4).tolist()), pa.float64()),
            "express": pa.array(_where(ids % 11 == 0, (rng.random(rows) < 0.2).tolist()), pa.bool_()),
            "created_at": pa.array(base + micros.astype("timedelta64[us]"), pa.timestamp("us", tz="UTC")),
            "promised_at": pa.array(base + ((day + 3) * 86_400_000_000).astype("timedelta64[us]"), pa.timestamp("us")),
            "tracking_code": pa.array(codes),
            "note": pa.array(notes, pa.string()),
        }
    )


def customers_table(rows: int = CUSTOMERS_ROWS) -> pa.Table:
    rng = np.random.default_rng(7)
    out: dict[str, list[Any]] = {f.name: [] for f in CUSTOMERS_SCHEMA}
    cities = ["Zürich", "São Paulo", "New York", "Köln", "東京"]
    for i in range(1, rows + 1):
        out["customer_id"].append(i)
        out["name"].append(f'Customer {i}, "the {i % 3}th"\nsecond line' if i % 100 == 0 else f"Customer {i}")
        out["email"].append(None if i % 9 == 0 else f"c{i}@example.com")
        out["signup_date"].append(FIRST_DAY - dt.timedelta(days=int(rng.integers(0, 2000))))
        out["vip"].append(None if i % 13 == 0 else bool(i % 4 == 0))
        out["balance"].append(decimal.Decimal(int(rng.integers(-(10**9), 10**9))).scaleb(-9 + int(i % 5)))
        out["score"].append(None if i % 17 == 0 else float(rng.normal(50, 10)))
        out["avatar"].append(None if i % 3 == 0 else bytes(rng.integers(0, 256, 16, dtype=np.uint8)))
        out["last_login"].append(
            None if i % 5 == 0 else EPOCH_2025 + dt.timedelta(microseconds=int(rng.integers(0, 10**13)))
        )
        out["tags"].append([f"t{j}" for j in range(i % 4)])
        out["address"].append(
            None
            if i % 10 == 0
            else {
                "street": f"{i} Main St",
                "city": cities[i % len(cities)],
                "zip": f"{i:05d}",
                "geo": None
                if i % 7 == 0
                else {"lat": float(rng.uniform(-90, 90)), "lon": float(rng.uniform(-180, 180))},
            }
        )
        out["phones"].append([{"kind": k, "number": f"+41 44 {i:06d}"} for k in ("home", "mobile")[: i % 3]])
    return pa.Table.from_pydict(out, schema=arrow_schema(CUSTOMERS_SCHEMA))


def products_table(rows: int = PRODUCTS_ROWS) -> pa.Table:
    out: dict[str, list[Any]] = {f.name: [] for f in PRODUCTS_SCHEMA}
    for i in range(rows):
        out["sku"].append(f"SKU-{i:05d}")
        out["title"].append(None if i % 25 == 0 else f"Product {i} — Größe {i % 5}")
        out["price"].append(decimal.Decimal(i * 137 + 99).scaleb(-2))
        out["weight_kg"].append(None if i % 8 == 0 else i / 7)
        out["active"].append(i % 6 != 0)
        out["thumbnail"].append(None if i % 4 == 0 else bytes([i % 256, 0, 255, 10, 13]))
        out["stock"].append(None if i % 9 == 0 else (2**62 if i == 1 else i * 3 - 50))
        out["released"].append(None if i % 10 == 0 else FIRST_DAY + dt.timedelta(days=i))
        out["added"].append(dt.datetime(2024, 6, 1, 12, 0) + dt.timedelta(hours=i, microseconds=i * 7))
        out["updated_at"].append(None if i % 11 == 0 else EPOCH_2025 + dt.timedelta(minutes=i))
        out["dimensions"].append(None if i % 12 == 0 else {"w": 1.5 * i, "h": None if i % 2 else 2.0, "d": 0.25})
        out["categories"].append(["home", "garden"][: i % 3])
    return pa.Table.from_pydict(out, schema=arrow_schema(PRODUCTS_SCHEMA))


TABLES: dict[str, tuple[list[Any], Callable[[], pa.Table]]] = {
    "orders": (ORDERS_SCHEMA, orders_table),
    "customers": (CUSTOMERS_SCHEMA, customers_table),
    "products": (PRODUCTS_SCHEMA, products_table),
}


def load_table(client: Any, table_id: str, schema: list[Any], data: pa.Table) -> int:
    """(Re)create ``table_id`` with ``schema`` and load ``data`` as Parquet. Returns the row count."""
    client.delete_table(table_id, not_found_ok=True)
    client.create_table(bigquery.Table(table_id, schema=schema))
    buffer = io.BytesIO()
    pq.write_table(data, buffer, compression="snappy")
    buffer.seek(0)
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET, write_disposition="WRITE_APPEND")
    client.load_table_from_file(buffer, table_id, size=None, job_config=config).result(timeout=120)
    return data.num_rows


def seed(
    bigquery_client: Any, project: str, dataset: str = "sales", *, tables: tuple[str, ...] | None = None
) -> dict[str, int]:
    """Create ``project.dataset`` with the sample tables and the view; returns rows per table."""
    bigquery_client.create_dataset(f"{project}.{dataset}", exists_ok=True)
    loaded = {}
    for name in tables or tuple(TABLES):
        schema, build = TABLES[name]
        loaded[name] = load_table(bigquery_client, f"{project}.{dataset}.{name}", schema, build())
    if tables is None or "orders" in tables:
        view = f"`{project}.{dataset}.orders_by_day`"
        sql = f"CREATE OR REPLACE VIEW {view} AS SELECT order_date, COUNT(*) AS orders FROM `{project}.{dataset}.orders` GROUP BY order_date"
        bigquery_client.query(sql, job_retry=None).result()
    return loaded
