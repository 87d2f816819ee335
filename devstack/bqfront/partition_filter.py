"""BigQuery's ``requirePartitionFilter``, which bqemulator drops.

A partitioned table created (or patched) with ``requirePartitionFilter: true`` (at the top level
or, as older clients write it, in ``timePartitioning``) is remembered here; ``tables.get`` shows
the flag again, and a query over the table whose text has no ``WHERE`` naming its partitioning
column (``_PARTITIONTIME`` for an ingestion-time table) fails as BigQuery fails it: 400
``invalidQuery``, "Cannot query over table 'p.d.t' without a filter over column(s) 'c' that can be
used for partition elimination". Extract jobs read the table whatever the flag, as BigQuery's do.

BigQuery decides from its analysis of the query which filters can prune; this looks at the text
(the table named, then a ``WHERE`` and the column after it), enough to tell a query that gives
such a filter from one that gives none. The flags live in the front's memory: a restarted front
has forgotten them.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from devstack.bqfront.errors import JobFailure

INGESTION_TIME = "_PARTITIONTIME"
PARTITIONINGS = ("timePartitioning", "rangePartitioning")


def required(table: dict[str, Any]) -> bool | None:
    """The flag a tables.insert/patch body sets: True, False, or None when it says nothing."""
    if "requirePartitionFilter" in table:
        return bool(table["requirePartitionFilter"])
    timed = table.get("timePartitioning")
    if isinstance(timed, dict) and "requirePartitionFilter" in timed:
        return bool(timed["requirePartitionFilter"])
    return None


def partition_column(table: dict[str, Any]) -> str | None:
    """The column a query must filter on; None for a table that is not partitioned."""
    timed = table.get("timePartitioning")
    if isinstance(timed, dict):
        return str(timed.get("field") or INGESTION_TIME)
    ranged = table.get("rangePartitioning")
    if isinstance(ranged, dict) and ranged.get("field"):
        return str(ranged["field"])
    return None


class PartitionFilters:
    """(project, dataset, table) → the partitioning column, for tables that require a filter;
    and the partitioning bqemulator does not keep (``rangePartitioning``), to show it again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[tuple[str, str, str], str] = {}
        self._dropped: dict[tuple[str, str, str], dict[str, Any]] = {}

    def remember(self, project: str, dataset: str, table: dict[str, Any], answered: dict[str, Any]) -> None:
        """After bqemulator created or patched the table: ``table`` is the request body,
        ``answered`` the table bqemulator returned (its partitioning, when the patch names none)."""
        flag = required(table)
        if flag is None:
            return
        ref = answered.get("tableReference") or table.get("tableReference") or {}
        key = (project, dataset, str(ref.get("tableId", "")))
        column = partition_column(answered) or partition_column(table)
        dropped = {k: table[k] for k in PARTITIONINGS if k in table and k not in answered}
        with self._lock:
            if flag and column:
                self._tables[key] = column
                self._dropped[key] = dropped
            else:
                self._tables.pop(key, None)
                self._dropped.pop(key, None)

    def forget(self, project: str, dataset: str, table: str) -> None:
        with self._lock:
            self._tables.pop((project, dataset, table), None)
            self._dropped.pop((project, dataset, table), None)

    def shown(self, project: str, dataset: str, table: str, answered: dict[str, Any]) -> dict[str, Any]:
        """A tables.get answer with the flag (and partitioning) BigQuery would show."""
        key = (project, dataset, table)
        with self._lock:
            if key not in self._tables:
                return answered
            return {**self._dropped.get(key, {}), **answered, "requirePartitionFilter": True}

    def check(self, project: str, sql: str, default_dataset: dict[str, Any] | None = None) -> None:
        """JobFailure ``invalidQuery`` when ``sql`` reads a flagged table without a filter on its column."""
        with self._lock:
            tables = dict(self._tables)
        plain = sql.replace("`", "")  # `p.d.t`, `p`.`d`.`t` and p.d.t name the same table
        for (p, d, t), column in tables.items():
            position = _referenced_at(plain, p, d, t, project, default_dataset)
            if position is None:
                continue
            where = re.search(r"\bWHERE\b", plain[position:], re.IGNORECASE)
            after = plain[position + where.end() :] if where else ""
            if not re.search(rf"(?<![\w]){re.escape(column)}\b", after, re.IGNORECASE):
                raise JobFailure(
                    "invalidQuery",
                    f"Cannot query over table '{p}.{d}.{t}' without a filter over column(s) '{column}' "
                    "that can be used for partition elimination",
                )


def _referenced_at(
    sql: str, project: str, dataset: str, table: str, default_project: str, default_dataset: dict[str, Any] | None
) -> int | None:
    """Where ``sql`` (without backticks) names the table (the end of the name), None when it does not."""
    names = [f"{project}.{dataset}.{table}"]
    if project == default_project:
        names.append(f"{dataset}.{table}")
    if default_dataset and (default_dataset.get("projectId"), default_dataset.get("datasetId")) == (project, dataset):
        names.append(table)
    for name in names:
        found = re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", sql)
        if found:
            return found.end()
    return None
