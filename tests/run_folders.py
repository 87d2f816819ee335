"""Run folders in GCS the way export_table writes them (``_run.json`` first, the manifest last),
and waiting for what the pipeline makes of them."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TypeVar

from shared.gcp import gcs
from shared.layout import RunFolder, default_file_name
from shared.manifest import Manifest, ManifestFile
from shared.messages import Source

T = TypeVar("T")


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
    routing = run.export_task("PARQUET", destinations, file_name)
    gcs.write(bucket, run.run_name, routing.to_json(), "application/json", if_generation_match=0)
    return run


def run_manifest(
    bucket: str,
    folder: RunFolder,
    files: dict[str, bytes],
    generations: dict[str, int],
    destinations: tuple[str, ...],
) -> Manifest:
    """The manifest export_table would write last for ``files`` of the run ``folder`` (a PARQUET
    table export of 2025-01-08 in tests)."""
    return Manifest(
        run_id=folder.run_id,
        source=folder.source,
        date=folder.date.isoformat(),
        bucket=bucket,
        prefix=folder.prefix,
        format="PARQUET",
        compression="SNAPPY",
        file_name=default_file_name(folder.source.table or "t", "PARQUET"),
        destinations=destinations,
        job_id=f"job-{folder.run_id}",
        row_count=len(files),
        schema=[],
        files=tuple(
            ManifestFile(name=n, object=folder.prefix + n, size=len(d), generation=generations[n])
            for n, d in sorted(files.items())
        ),
        created_at="2025-01-08T02:00:00Z",
    )


def eventually(check: Callable[[], T | None], what: str, deadline_s: float = 240.0, poll_s: float = 0.3) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after the deadline."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        value = check()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"not within {deadline_s:.0f}s: {what}")
