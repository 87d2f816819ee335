"""The demo's ingest step: the sample SQLite app synced into the local BigQuery, then one incremental sync.

It prints one line per table and run (mode, status, rows read, rows merged, watermark), so the
second run shows only what changed in between: three users updated in place (same id, newer
``updated_at``) and five new chat messages. Returns whether every table synced.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from devstack.state import StackInfo


def show_incremental_sync(info: StackInfo, echo: Callable[[str], None]) -> bool:
    from devstack import sample_app
    from shared.config.load import load_config
    from shared.gcp import clients
    from shared.ingest.engine import IngestRun, sync

    settings = load_config(info.config_path).ingest
    if settings is None:
        echo("ingest: the stack's config has no ingest section; skipped")
        return True
    db = Path(settings.sqlite_path)
    counts = sample_app.create(db)
    echo(f"SQLite app {db}: " + ", ".join(f"{t} ({n:,} rows)" for t, n in counts.items()))
    ok = True
    for label in ("initial", "incremental"):
        if label == "incremental":
            changed = sample_app.change(db)
            echo("app writes: " + ", ".join(f"{n} {what}" for what, n in changed.items()))
        for o in sync(IngestRun(settings, clients.bigquery_client(), info.project)):
            ok = ok and o.status in ("synced", "empty")
            echo(
                f"  ingest {label:<11}  {settings.dataset}.{o.table}  {o.mode}  {o.status}  "
                f"read {o.rows_read}  merged {o.rows_merged}  watermark {o.watermark}"
                + (f"  ({o.error})" if o.error else "")
            )
    return ok
