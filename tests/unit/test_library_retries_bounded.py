"""BigQuery or GCS unreachable: every stage that calls them gives up within its own bound, not
the client library's. google-cloud-bigquery retries a refused connection for 600 s by default, a
query's ``result()`` re-runs the job for 2,400 s, the Storage Write API's client retries
UNAVAILABLE for 1,200 s, google-cloud-storage for 120 s: inside our own retries, such a call
outlives the 540 s an event-driven invocation has, so the platform kills the stage mid-retry
instead of it failing with a TransientError that Pub/Sub redelivers.

Each call here goes to a port nothing listens on, with the library bound (``API_DEADLINE_S``,
``gcs.LIBRARY_RETRY``) cut to a second; the call must end with a TransientError well within the join timeout. Before
the bound reached these calls, `offsite ingest run` against a stopped bqemulator printed nothing
for over six minutes.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.config.ingest import IngestSettings
from shared.errors import TransientError
from shared.gcp import bq_jobs, gcs
from shared.ingest import snapshot, target, write_api
from shared.ingest.engine import IngestRun, sync
from shared.ingest.plan import TablePlan, connect, plan_table
from shared.ingest.source import TableReader
from shared.ingest.state import SyncState
from shared.restore import drill
from shared.stages import ingest as ingest_stage

GIVE_UP_WITHIN_S = 60.0  # the bound below makes each call end in seconds; the library's own takes 600+


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def short_library_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bq_jobs, "API_DEADLINE_S", 1.0)


@pytest.fixture
def client(closed_port: int) -> Any:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project="p",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{closed_port}"),
    )


def outcome_of(fn: Callable[[], object]) -> BaseException | None:
    """What ``fn()`` raised (None: it returned); the test fails if it is still running."""
    raised: list[BaseException | None] = []

    def target_() -> None:
        try:
            fn()
            raised.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)

    thread = threading.Thread(target=target_, daemon=True)
    thread.start()
    thread.join(GIVE_UP_WITHIN_S)
    assert raised, f"still retrying after {GIVE_UP_WITHIN_S:.0f}s: the client library's own retry is unbounded"
    return raised[0]


def users_plan(tmp_path: Path) -> TablePlan:
    """The plan of a one-table SQLite app (one row) in ``tmp_path/app.db``."""
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users VALUES (1, 'ada')")
    conn = connect(str(db))
    try:
        return plan_table(conn, IngestSettings.model_validate({"sqlite_path": str(db), "dataset": "app"}), "users")
    finally:
        conn.close()


def test_the_ingest_state_table_gives_up(client: Any) -> None:
    exc = outcome_of(SyncState(client, "p", "app").ensure)
    assert isinstance(exc, TransientError), exc
    assert "dataset app" in str(exc)


def test_a_sync_run_gives_up(client: Any, tmp_path: Path) -> None:
    users_plan(tmp_path)
    settings = IngestSettings.model_validate({"sqlite_path": str(tmp_path / "app.db"), "dataset": "app"})
    exc = outcome_of(lambda: sync(IngestRun(settings, client, "p")))
    assert isinstance(exc, TransientError), exc


@pytest.mark.parametrize("step", ["create_staging", "drop_staging", "create_target"])
def test_each_ingest_table_step_gives_up(client: Any, tmp_path: Path, step: str) -> None:
    plan = users_plan(tmp_path)
    staging = "p.app._offsite_stage_users_r1"
    steps: dict[str, Callable[[], object]] = {
        "create_staging": lambda: target.create_staging(client, staging, plan, 60),
        "drop_staging": lambda: target.drop_staging(client, staging),
        "create_target": lambda: target.ensure_target(client, "p.app.users", plan),
    }
    exc = outcome_of(steps[step])
    assert isinstance(exc, TransientError), exc


def test_the_storage_write_api_gives_up(closed_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = users_plan(tmp_path)
    conn = connect(str(tmp_path / "app.db"))
    batch = next(TableReader(conn, plan, watermark=None, full=False, batch_rows=10, hash_key=b"").batches())
    conn.close()
    monkeypatch.setenv("OFFSITE_BIGQUERY_STORAGE_ENDPOINT", f"127.0.0.1:{closed_port}")
    stager = write_api.PendingStager(plan, write_api.client_from_env(), "p.app.stage", lambda: None)
    exc = outcome_of(lambda: stager.add(batch))
    assert isinstance(exc, TransientError), exc


def test_a_restore_drills_scratch_table_cleanup_gives_up(client: Any) -> None:
    class Warehouse:  # what _expire and _drop use of BigQueryWarehouse: its client
        pass

    wh: Any = Warehouse()
    wh.client = client
    # Best effort (the scratch table expires): each logs its failure and returns.
    assert outcome_of(lambda: drill._expire(wh, "p.scratch.t", 24)) is None
    assert outcome_of(lambda: drill._drop(wh, "p.scratch.t")) is None


@pytest.fixture
def storage(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A GCS client at the closed port, the library bound (``gcs.LIBRARY_RETRY``, 20 s) cut to a second."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.storage import Client
    from google.cloud.storage.retry import DEFAULT_RETRY

    short = DEFAULT_RETRY.with_timeout(1.0)
    monkeypatch.setattr(gcs, "LIBRARY_RETRY", short)
    monkeypatch.setattr(snapshot, "LIBRARY_RETRY", short)
    return Client(
        project="p",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{closed_port}"),
    )


def test_the_ingest_snapshot_download_gives_up(storage: Any, tmp_path: Path) -> None:
    exc = outcome_of(lambda: snapshot.fetch(storage, "b", "app.sqlite", tmp_path / "copy.sqlite"))
    assert isinstance(exc, TransientError), exc
    assert "downloading gs://b/app.sqlite" in str(exc)


def test_the_ingest_functions_size_check_gives_up(storage: Any) -> None:
    exc = outcome_of(lambda: ingest_stage._check_size(storage, "b", "app.sqlite", None, 1 << 30))
    assert isinstance(exc, TransientError), exc
    assert "reading gs://b/app.sqlite" in str(exc)
