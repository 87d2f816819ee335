"""Fixtures for export tests: the shared local stack, seeded with devstack.sample_data.

``exports_env`` (function): the bare stack (no function processes) with its environment in
os.environ, the sample `sales` dataset seeded once per worker, and an :class:`ExportsKit`
to build real-shaped CloudEvents, drive the real handlers of functions/export_table/main.py
and pull what they published.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import importlib.util
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from devstack.state import StackInfo

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


def load_entry_points() -> Any:
    """functions/export_table/main.py, imported as functions-framework would (by file)."""
    spec = importlib.util.spec_from_file_location("export_table_main", REPO / "functions" / "export_table" / "main.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pubsub_event(
    template: str,
    data: bytes,
    *,
    message_id: str | None = None,
    publish_time: str | None = None,
    project: str = "offsite-local",
) -> CloudEvent:
    """A messagePublished CloudEvent shaped like the saved example ``tests/data/<template>``."""
    raw = json.loads((DATA / template).read_text())
    event = copy.deepcopy(raw)
    message_id = message_id or str(uuid.uuid4().int % 10**16)
    publish_time = publish_time or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    topic = event["source"].rsplit("/topics/", 1)[1]
    event["source"] = f"//pubsub.googleapis.com/projects/{project}/topics/{topic}"
    event["id"] = message_id
    event["time"] = publish_time
    msg = event["data"]["message"]
    msg.update(data=base64.b64encode(data).decode(), messageId=message_id, message_id=message_id)
    msg.update(publishTime=publish_time, publish_time=publish_time)
    attributes = {
        k: event.pop(k) for k in ("specversion", "id", "source", "type", "datacontenttype", "time") if k in event
    }
    return CloudEvent(attributes, event["data"])


@dataclass
class Puller:
    """A pull subscription made for one test, so it sees only what is published from now on."""

    subscription: str
    seen: list[Any] = field(default_factory=list)

    def pull(self, predicate: Callable[[Any], bool], *, count: int = 1, timeout_s: float = 30.0) -> list[Any]:
        """Messages (decoded JSON, attributes under "_attributes") matching ``predicate``; waits for ``count``."""
        import time

        from shared.gcp import clients, pubsub

        deadline = time.monotonic() + timeout_s
        while True:
            matched = [m for m in self.seen if predicate(m)]
            if len(matched) >= count or time.monotonic() > deadline:
                return matched
            received_messages = pubsub.pull_waiting(self.subscription, 100)
            if received_messages:
                clients.subscriber_client().acknowledge(
                    subscription=self.subscription, ack_ids=[r.ack_id for r in received_messages]
                )
            for received in received_messages:
                body = json.loads(received.message.data)
                body["_attributes"] = dict(received.message.attributes)
                self.seen.append(body)
            if not received_messages:
                time.sleep(0.2)

    def drain(self, settle_s: float = 2.0) -> list[Any]:
        """Everything that arrives within ``settle_s`` (to show that nothing more was published)."""
        self.pull(lambda _m: False, count=1, timeout_s=settle_s)
        return list(self.seen)


@dataclass
class ExportsKit:
    stack: StackInfo
    main: Any

    @property
    def config(self) -> Any:
        from shared import runtime

        return runtime.config()

    @property
    def bucket(self) -> str:
        return self.stack.bucket

    def subscribe(self, topic: str) -> Puller:
        from shared.gcp import clients

        name = f"projects/{self.stack.project}/subscriptions/test-{topic}-{uuid.uuid4().hex[:12]}"
        clients.subscriber_client().create_subscription(
            name=name, topic=f"projects/{self.stack.project}/topics/{topic}"
        )
        return Puller(name)

    def request_event(self, body: dict[str, Any] | bytes, **kw: Any) -> CloudEvent:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return pubsub_event("pubsub_export_request.json", data, project=self.stack.project, **kw)

    def table_export_event(self, task: Any, **kw: Any) -> CloudEvent:
        data = task if isinstance(task, bytes) else task.to_json()
        return pubsub_event("pubsub_table_export.json", data, project=self.stack.project, **kw)

    def bigquery(self) -> Any:
        from shared.gcp import clients

        return clients.bigquery_client()

    def source_rows(self, table: str, where_date: dt.date | None = None) -> list[dict[str, Any]]:
        """The table's rows as BigQuery returns them (REST), ordered by the first column.

        ``where_date`` keeps only orders of that day (what orders_daily exports).
        """
        from google.cloud import bigquery

        if where_date is None:
            rows = (
                self.bigquery().list_rows(f"{self.stack.project}.sales.{table}").to_arrow(create_bqstorage_client=False)
            )
        else:
            config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("d", "DATE", where_date)])
            sql = f"SELECT * FROM `{self.stack.project}.sales.{table}` WHERE order_date = @d"
            rows = self.bigquery().query(sql, job_config=config, job_retry=None).to_arrow(create_bqstorage_client=False)
        first = rows.schema.names[0]
        return sorted(rows.to_pylist(), key=lambda r: r[first])

    def source_count(self, table: str, where_date: dt.date | None = None) -> int:
        """How many rows ``source_rows`` would give, counted by BigQuery (``COUNT(*)``): reading
        200,000 rows over REST only to count them takes the emulator ~40 s."""
        from google.cloud import bigquery

        sql = f"SELECT COUNT(*) AS n FROM `{self.stack.project}.sales.{table}`"
        params = []
        if where_date is not None:
            sql += " WHERE order_date = @d"
            params = [bigquery.ScalarQueryParameter("d", "DATE", where_date)]
        config = bigquery.QueryJobConfig(query_parameters=params)
        (row,) = self.bigquery().query(sql, job_config=config, job_retry=None).result()
        return int(row["n"])


_seeded: dict[str, bool] = {}


@pytest.fixture
def exports_env(bare_stack_env: StackInfo) -> Iterator[ExportsKit]:
    from devstack.sample_data import seed
    from shared import runtime
    from shared.gcp import clients

    runtime.reset()
    if not _seeded.get(str(bare_stack_env.root)):
        seed(clients.bigquery_client(), bare_stack_env.project)
        _seeded[str(bare_stack_env.root)] = True
    yield ExportsKit(bare_stack_env, load_entry_points())
    runtime.reset()


@pytest.fixture
def kit(exports_env: ExportsKit, monkeypatch: pytest.MonkeyPatch) -> ExportsKit:
    """The exports stack, export_table waiting at most 1 s for its job before acknowledging (a
    job still running is finished by its completion event or the finalize sweep)."""
    from shared.stages.export import BUDGET_ENV

    monkeypatch.setenv(BUDGET_ENV, "1")
    return exports_env


@pytest.fixture
def audit(exports_env: ExportsKit) -> Iterator[Puller]:
    """What the BigQuery front publishes to the audit-log topic from now on (raw entries)."""
    from devstack.launches import AUDIT_LOG_TOPIC

    yield exports_env.subscribe(AUDIT_LOG_TOPIC)


def new_run_id() -> str:
    return "t" + uuid.uuid4().hex[:12]


def table_task(
    kit: ExportsKit, table: str, fmt: str = "PARQUET", *, run_id: str | None = None, destinations=("box",)
) -> Any:
    """A TableExport as fan_out would publish it for one table of `sales`."""
    from shared.layout import RunFolder, default_file_name
    from shared.messages import Source

    run_id = run_id or new_run_id()
    source = Source(mode="table", project=kit.stack.project, dataset="sales", table=table)
    date = dt.date(2025, 1, 8)
    return RunFolder("exports", source, date, run_id).export_task(
        fmt, tuple(destinations), default_file_name(table, fmt)
    )


def query_task(kit: ExportsKit, date: dt.date, fmt: str = "CSV", *, run_id: str | None = None) -> Any:
    from shared.layout import RunFolder
    from shared.messages import Source

    run_id = run_id or new_run_id()
    source = Source(mode="query", project=kit.stack.project, export="orders_daily")
    ext = {"CSV": "csv.gz", "PARQUET": "parquet", "AVRO": "avro", "NEWLINE_DELIMITED_JSON": "json.gz"}[fmt]
    return RunFolder("exports", source, date, run_id).export_task(fmt, ("sftp:local",), f"Orders_{{YYYYMMDD}}-*.{ext}")


def manifest_of(kit: ExportsKit, task: Any) -> Any:
    """The run's manifest, or None when there is none."""
    from shared.gcp import gcs
    from shared.manifest import Manifest

    data = gcs.read_bytes(kit.bucket, task.prefix + "_manifest.json")
    return None if data is None else Manifest.from_json(data)


def object_bytes(kit: ExportsKit, name: str) -> bytes:
    from shared.gcp import reader

    with reader.open_object(kit.bucket, name) as stream:
        return stream.read()
