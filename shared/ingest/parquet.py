"""Converted batches → Parquet files of at most ``rows_per_load`` rows, one row group per batch.

Memory holds one batch at a time; each finished file is handed to ``on_file`` (a load job into
the staging table) and removed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.ingest import types
from shared.ingest.plan import TablePlan
from shared.ingest.source import Batch


def arrow_schema(plan: TablePlan) -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(c.name, types.arrow_type(c.bq_type)) for c in plan.columns])


class ParquetChunks:
    def __init__(self, plan: TablePlan, rows_per_load: int, on_file: Callable[[Path], None]) -> None:
        self.plan, self.rows_per_load, self.on_file = plan, rows_per_load, on_file
        self.schema = arrow_schema(plan)
        self._dir = tempfile.TemporaryDirectory(prefix=f"offsite-ingest-{plan.name}-")
        self._writer: Any = None
        self._path: Path | None = None
        self._rows = 0
        self._files = 0

    def add(self, batch: Batch) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            self._files += 1
            self._path = Path(self._dir.name) / f"part-{self._files:05d}.parquet"
            self._writer = pq.ParquetWriter(self._path, self.schema, compression="snappy")
        arrays = [pa.array(batch.columns[f.name], type=f.type) for f in self.schema]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self._rows += batch.rows
        if self._rows >= self.rows_per_load:
            self.flush()

    def flush(self) -> None:
        if self._writer is None or self._path is None:
            return
        self._writer.close()
        path, self._writer, self._path, self._rows = self._path, None, None, 0
        try:
            self.on_file(path)
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._dir.cleanup()
