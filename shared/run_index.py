"""Which run folders a run id has: the fan-out's record of each request it fanned out.

Run folders are named ``{prefix}/{dataset}/{table}/{YYYYMMDD}/{run_id}/``, so GCS has no
listing by run id: finding a run's folders from its id alone means listing every run the
exports bucket keeps (90 days of a nightly run of thousands of tables is millions of objects,
minutes of pages; docs/capacity.md). So fan_out records, before it publishes a request's table
exports, the exports themselves (what each folder's ``_run.json`` will hold) in the state
bucket: ``run-index/{run_id}/{dataset or _queries.export}-{digest}.json``, one object per
export request. The name carries a digest of the exports, so a redelivered request writes
nothing new (create-only, ``if_generation_match=0``) and two requests of one run (``offsite
run`` sends one per dataset) each keep their own. The state bucket's lifecycle rule ends them
with the rest of the run's records.

Readers (``GET /runs/<id>``, ``offsite verify RUN``, a verify request by run id) ask
:func:`exports_of` and list only those folders; a run without a record (started before the
index existed, or by table-exports published by hand) is found by the whole listing, as before.
A table export published by hand under a run id the fan-out recorded is not in the record: give
such a message a run id of its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from shared import log
from shared.errors import RejectedInput
from shared.gcp import gcs
from shared.messages import TableExport

logger = log.get_logger(__name__)

INDEX_PREFIX = "run-index/"


def run_prefix(run_id: str) -> str:
    return f"{INDEX_PREFIX}{run_id}/"


def record_name(exports: Sequence[TableExport]) -> str:
    """The record of one request's ``exports`` (all of one run and one dataset or query)."""
    first = exports[0]
    source = first.source.dataset if first.source.mode == "table" else f"_queries.{first.source.export}"
    digest = hashlib.sha1("\n".join(sorted(e.prefix for e in exports)).encode()).hexdigest()[:12]
    return f"{run_prefix(first.run_id)}{source}-{digest}.json"


def record(state_bucket: str, exports: Sequence[TableExport]) -> None:
    """Record a request's table exports before they are published (a transient failure raises:
    the request is redelivered and fans out again under the same run id)."""
    if not exports:
        return
    body = {"run_id": exports[0].run_id, "exports": [e.to_dict() for e in exports]}
    data, name = json.dumps(body, sort_keys=True).encode(), record_name(exports)
    if not gcs.write_if_absent(state_bucket, name, data, "application/json"):
        logger.info("run index already recorded (a redelivered request)", record=name)


def exports_of(state_bucket: str, run_id: str) -> list[TableExport] | None:
    """Every table export the fan-out recorded for ``run_id``, by folder; None when it recorded
    none (the caller falls back to listing the exports bucket). A record that does not parse is
    skipped, named in the log."""
    names = [info.name for info in gcs.list_prefix(state_bucket, run_prefix(run_id))]
    if not names:
        return None
    exports: dict[str, TableExport] = {}
    for name in names:
        data = gcs.read_bytes(state_bucket, name)
        try:
            body = json.loads(data or b"{}")
            found = [TableExport.from_obj(e) for e in body.get("exports", [])]
        except (ValueError, TypeError, AttributeError, RejectedInput) as exc:
            logger.warning("unreadable run index record; skipped", record=name, error=str(exc))
            continue
        exports.update((e.prefix, e) for e in found if e.run_id == run_id)
    return [exports[p] for p in sorted(exports)]
