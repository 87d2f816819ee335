"""Start a run folder in GCS the way export_table does: its ``_run.json`` routing first."""

from __future__ import annotations

import datetime as dt

from shared.gcp import gcs
from shared.layout import RunFolder
from shared.messages import Source, TableExport


def start_run(
    bucket: str,
    export_prefix: str,
    source: Source,
    day: dt.date,
    run_id: str,
    destinations: tuple[str, ...],
    file_name: str,
) -> RunFolder:
    """Write the run's ``_run.json`` (a PARQUET TableExport, created once) and return its folder."""
    run = RunFolder(export_prefix, source, day, run_id)
    routing = TableExport(
        run_id=run_id,
        date=day,
        source=source,
        format="PARQUET",
        destinations=destinations,
        prefix=run.prefix,
        file_name=file_name,
    )
    gcs.write(bucket, run.run_name, routing.to_json(), "application/json", if_generation_match=0)
    return run
