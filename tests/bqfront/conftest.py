"""Fixtures for the BigQuery front: google-cloud-bigquery's own client against the stack's front.

``front`` (module): a :class:`FrontKit` on the bare stack (front + bqemulator + fake-gcs-server,
started for real), with a fresh dataset holding the edge-value tables:

- ``flat``: every scalar type bqemulator stores, edge values and NULLs (CSV-exportable);
- ``nested``: the same scalars plus a RECORD that is sometimes NULL with a REPEATED field in
  it, a nested RECORD, a REPEATED INT64 and a REPEATED RECORD, empty arrays;
- ``lone_cr``: 1,000 rows whose strings hold lone CRs (and other separators); ``many``: 5,000 such.

``small_shards``: a :class:`SecondFront`: a second front started as a subprocess (``python -m
devstack.bqfront``) before the same bqemulator with a 20 kB shard size, so one table makes several
files, and a spool directory of its own that held a killed front's leftover before it started.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, storage
from google.cloud.bigquery import SchemaField as F

from devstack.ports import free_port
from devstack.state import StackInfo

REPO = Path(__file__).resolve().parents[2]

SCALARS = [
    F("id", "INT64", mode="REQUIRED"),
    F("s", "STRING"),
    F("n", "NUMERIC"),
    F("b", "BYTES"),
    F("ts", "TIMESTAMP"),
    F("d", "DATE"),
    F("dtm", "DATETIME"),
    F("t", "TIME"),
    F("ok", "BOOL"),
    F("f", "FLOAT64"),
    F("i", "INT64"),
]
NESTED = [
    *SCALARS,
    F(
        "rec",
        "RECORD",
        fields=[
            F("name", "STRING"),
            F("tags", "STRING", mode="REPEATED"),
            F("sub", "RECORD", fields=[F("x", "INT64")]),
        ],
    ),
    F("arr", "INT64", mode="REPEATED"),
    F("items", "RECORD", mode="REPEATED", fields=[F("k", "STRING"), F("v", "NUMERIC")]),
]
NUMERIC_MAX = "99999999999999999999999999999.999999999"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SCALAR_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "s": 'comma, "quote"\r\nCRLF\rlone CR\nLF',
        "n": NUMERIC_MAX,
        "b": b64(b"\x00\x01\x00\xff"),
        "ts": "2025-01-08T10:00:00.123456Z",
        "d": "0001-01-01",
        "dtm": "9999-12-31T23:59:59.999999",
        "t": "23:59:59.999999",
        "ok": True,
        "f": "Infinity",
        "i": 9223372036854775807,
    },
    {
        "id": 2,
        "s": "",
        "n": "-" + NUMERIC_MAX,
        "b": "",
        "ts": "0001-01-01T00:00:00Z",
        "d": "9999-12-31",
        "dtm": "0001-01-01T00:00:00",
        "t": "00:00:00",
        "ok": False,
        "f": "NaN",
        "i": -9223372036854775808,
    },
    {"id": 3, "s": "Zürich 東京 🙂", "n": "0.000000001", "f": "-Infinity", "i": 0, "ts": "9999-12-31T23:59:59.999999Z"},
    {"id": 4},  # NULL in every nullable column
    {
        "id": 5,
        "s": "\r",
        "n": "0",
        "b": b64(b"\x00"),
        "f": -0.5,
        "ts": "1970-01-01T00:00:00.000001Z",
        "t": "12:00:00.5",
    },
    {"id": 6, "s": " leading and trailing ", "f": 1e308, "dtm": "2024-02-29T12:34:56.5", "d": "2024-02-29"},
]
NESTED_EXTRA: dict[int, dict[str, Any]] = {
    1: {"rec": None, "arr": [], "items": []},
    2: {"rec": {"name": None, "tags": ["x", ""], "sub": None}, "arr": [1, 2], "items": [{"k": "", "v": None}]},
    3: {
        "rec": {"name": "n", "tags": [], "sub": {"x": 5}},
        "arr": [],
        "items": [{"k": "a\rb", "v": "1.5"}, {"k": None, "v": NUMERIC_MAX}],
    },
    4: {},
    5: {"rec": None},
    6: {"rec": {"name": "", "tags": ["\r\n"], "sub": {"x": None}}, "arr": [-1]},
}


@dataclass
class FrontKit:
    stack: StackInfo
    bq: bigquery.Client
    gcs: storage.Client
    dataset: str

    @property
    def project(self) -> str:
        return self.stack.project

    @property
    def bucket(self) -> str:
        return self.stack.bucket

    def table(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"

    def source_rows(self, name: str) -> list[dict[str, Any]]:
        """What google-cloud-bigquery reads from the source table (the truth exports must match)."""
        return self.bq.list_rows(self.table(name)).to_arrow(create_bqstorage_client=False).to_pylist()

    def prefix(self) -> str:
        return f"bqfront-tests/{uuid.uuid4().hex[:12]}/"

    def objects(self, prefix: str) -> dict[str, bytes]:
        return {b.name: b.download_as_bytes() for b in self.gcs.list_blobs(self.bucket, prefix=prefix)}


def client_for(url: str, project: str) -> bigquery.Client:
    return bigquery.Client(
        project=project, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=url)
    )


def _load(bq: bigquery.Client, table_id: str, schema: list[Any], rows: list[dict[str, Any]]) -> None:
    table = bq.create_table(bigquery.Table(table_id, schema=schema))
    errors = bq.insert_rows_json(table, rows)
    assert errors == [], errors


def lone_cr_rows(n: int = 1000) -> list[dict[str, Any]]:
    texts = ["a\rb", "\r", "x\r\ry", "end\r", "\rstart", 'q"\r"', "c,\rd", "plain"]
    return [{"id": i, "s": f"{i}:{texts[i % len(texts)]}", "t2": texts[(i * 3) % len(texts)]} for i in range(n)]


@pytest.fixture(scope="module")
def front(bare_stack: StackInfo) -> Iterator[FrontKit]:
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = bare_stack.gcs_url
    bq = client_for(bare_stack.bigquery_url, bare_stack.project)
    gcs = storage.Client(project=bare_stack.project, credentials=AnonymousCredentials())
    dataset = f"bqfront_{uuid.uuid4().hex[:10]}"
    bq.create_dataset(f"{bare_stack.project}.{dataset}")
    kit = FrontKit(bare_stack, bq, gcs, dataset)
    _load(bq, kit.table("flat"), SCALARS, SCALAR_ROWS)
    _load(bq, kit.table("nested"), NESTED, [r | NESTED_EXTRA[r["id"]] for r in SCALAR_ROWS])
    _load(bq, kit.table("lone_cr"), [F("id", "INT64"), F("s", "STRING"), F("t2", "STRING")], lone_cr_rows())
    _load(bq, kit.table("many"), [F("id", "INT64"), F("s", "STRING"), F("t2", "STRING")], lone_cr_rows(5000))
    yield kit
    bq.delete_dataset(f"{bare_stack.project}.{dataset}", delete_contents=True, not_found_ok=True)
    if old is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = old


SMALL_SHARD_BYTES = 20_000
LEFTOVER_SPOOL = "bqfront-shard-killed.spool"


@dataclass(frozen=True)
class SecondFront:
    client: bigquery.Client
    spool_dir: Path
    log: Path


@pytest.fixture(scope="module")
def small_shards(front: FrontKit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondFront]:
    """A second front (its own process) before the stack's bqemulator, with 20 kB shards."""
    port = free_port()
    log = tmp_path_factory.mktemp("front") / "front.log"
    spool_dir = log.parent / "spool"
    spool_dir.mkdir()
    (spool_dir / LEFTOVER_SPOOL).write_bytes(b"x" * 1000)  # as a front killed mid-export leaves it
    argv = [sys.executable, "-m", "devstack.bqfront", "--port", str(port), "--upstream", front.stack.bqemulator_url]
    argv += ["--shard-bytes", str(SMALL_SHARD_BYTES), "--spool-dir", str(spool_dir)]
    env = {**os.environ, "STORAGE_EMULATOR_HOST": front.stack.gcs_url, "PYTHONPATH": str(REPO)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", proc, log)
        yield SecondFront(client_for(f"http://127.0.0.1:{port}", front.project), spool_dir, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"front exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"front did not answer at {url}: {log.read_text()}")
