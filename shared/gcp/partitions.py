"""Reading every row of a table that requires a partition filter.

A partitioned table created with ``require_partition_filter`` refuses any query without a filter
on its partitioning column ("Cannot query over table … without a filter over column(s) … that can
be used for partition elimination"); an extract job reads it regardless. The row count and the
fingerprint of an export, and a restore's proof, read the whole table, so they add a filter that
BigQuery accepts for partition elimination and that keeps every row, the NULL partition (and, for
an ingestion-time table, the streaming buffer's rows) included: ``(c IS NULL OR c IS NOT NULL)``,
as dbt-bigquery does for its MERGE (dbt-labs/dbt-bigquery#986).
"""

from __future__ import annotations

from typing import Any

from shared.gcp.fingerprint import quoted_column

INGESTION_TIME = "_PARTITIONTIME"  # the pseudo-column of a table partitioned by ingestion time


def requires_filter(table: Any) -> bool:
    """Whether queries over ``table`` (a google-cloud-bigquery Table) must filter on its partitions."""
    timed = getattr(table, "time_partitioning", None)
    return bool(getattr(table, "require_partition_filter", None)) or bool(
        timed is not None and getattr(timed, "require_partition_filter", None)
    )


def partition_column(table: Any) -> str | None:
    """The column a partition filter names; None for a table that is not partitioned."""
    timed = getattr(table, "time_partitioning", None)
    if timed is not None:
        return str(getattr(timed, "field", None) or INGESTION_TIME)
    ranged = getattr(table, "range_partitioning", None)
    field = getattr(ranged, "field", None) if ranged is not None else None
    return str(field) if field else None


def every_row(table: Any) -> str:
    """`` WHERE …`` keeping every row of ``table``, for a table that requires a partition filter;
    empty for any other table."""
    column = partition_column(table) if requires_filter(table) else None
    if column is None:
        return ""
    quoted = column if column == INGESTION_TIME else quoted_column(column)
    return f" WHERE ({quoted} IS NULL OR {quoted} IS NOT NULL)"
