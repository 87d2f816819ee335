"""Each table's outcome as a result on ``verify-results`` (stage ``ingest_sqlite``).

``synced`` and ``empty`` are ``in_sync``, ``busy`` (another run holds the lease) is
``incomplete``, ``failed`` is ``failed`` with the table's error as the reason. The source is
the BigQuery table written; rows read, rows merged and the watermark travel as their own fields.
"""

from __future__ import annotations

import json
from typing import Any

from shared.ids import Stage, Status
from shared.ingest.engine import TableOutcome
from shared.messages import Source, VerifyResult

STATUS = {"synced": Status.IN_SYNC, "empty": Status.IN_SYNC, "busy": Status.INCOMPLETE, "failed": Status.FAILED}


def result_for(outcome: TableOutcome, *, project: str, dataset: str, run_id: str) -> VerifyResult:
    return VerifyResult(
        status=STATUS.get(outcome.status, Status.FAILED),
        run_id=run_id,
        source=Source(mode="table", project=project, dataset=dataset, table=outcome.table),
        stage=Stage.INGEST_SQLITE,
        reason=outcome.error or f"{outcome.status}: {outcome.rows_read} read, {outcome.rows_merged} merged",
        rows_read=outcome.rows_read,
        rows_merged=outcome.rows_merged,
        watermark=None if outcome.watermark is None else json.dumps(outcome.watermark),
    )


def publish(outcomes: list[TableOutcome], *, project: str, dataset: str, run_id: str, config: Any = None) -> None:
    """Publish (and record, and alert on) one result per table."""
    from shared.reporting.results import report

    for outcome in outcomes:
        report(result_for(outcome, project=project, dataset=dataset, run_id=run_id), config=config)
