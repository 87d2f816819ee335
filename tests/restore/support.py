"""What the load-job and proof tests share: a two-column manifest and the BigQuery front's
test controls (``/_bqfront/holds``: jobs whose id starts with a prefix stay RUNNING)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from devstack.state import StackInfo
from shared.manifest import Manifest
from shared.messages import Source

SCHEMA = [{"name": "id", "type": "INTEGER", "mode": "REQUIRED"}, {"name": "s", "type": "STRING"}]


def manifest(run_id: str, fingerprint: dict[str, Any] | None = None) -> Manifest:
    """A run of two rows of ``SCHEMA`` (NDJSON), with ``fingerprint`` when given."""
    return Manifest(
        run_id=run_id,
        source=Source(mode="table", project="p", dataset="sales", table="t"),
        date="2025-01-08",
        bucket="b",
        prefix="x/",
        format="NEWLINE_DELIMITED_JSON",
        compression=None,
        file_name="t.json",
        destinations=("box",),
        job_id="j",
        row_count=2,
        schema=SCHEMA,
        files=(),
        created_at="2025-01-08T00:00:00+00:00",
        fingerprint=fingerprint,
    )


def front(info: StackInfo, method: str, path: str, body: dict[str, Any] | None = None) -> None:
    """Call one of the BigQuery front's test controls."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(info.bigquery_url + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    urllib.request.urlopen(req, timeout=10).close()
