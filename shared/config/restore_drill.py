"""``restore_drill:`` of a dataset: prove on a schedule that its copies can be restored.

``{schedule, sample, to, from}``: on ``schedule`` the restore_drill function restores ``sample``
tables of the dataset's latest ``in_sync`` runs from destination ``from`` into the scratch
dataset ``to`` (``PROJECT.DATASET`` or ``DATASET`` of the config's project), compares them with
their manifests and drops them (shared/restore/drill.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator

from shared.config.types import Cron, Model, TimeZone, between
from shared.ids import DestinationId
from shared.validation import Problem

SCRATCH_RE = re.compile(r"^(?:[a-z][a-z0-9:.-]{4,61}[a-z0-9]\.)?[A-Za-z_][A-Za-z0-9_]{0,1023}$")


class RestoreDrill(Model):
    # ``from`` is a Python keyword: the field is ``from_``, and ``from`` in config and in dumps
    model_config = ConfigDict(**Model.model_config, serialize_by_alias=True)

    schedule: Cron = Field(description="Cron expression of the drill's Cloud Scheduler job, e.g. '0 5 * * 1'.")
    time_zone: TimeZone = Field("UTC", description="Time zone of the schedule.")
    sample: Annotated[int, between(1, 20)] = Field(
        1, description="How many tables each drill restores (1 to 20), one per function invocation."
    )
    to: str = Field(
        description="Scratch dataset the tables are restored into and dropped from: PROJECT.DATASET or DATASET "
        "(of the config's project). Never the exported dataset."
    )
    from_: DestinationId | None = Field(
        None,
        alias="from",
        description="Destination the copies are read from ('box', 'sftp:NAME', 'drive:NAME'); default the "
        "dataset's first destination (or the first configured one).",
    )
    expiration_hours: Annotated[int, between(1, 168)] = Field(
        24, description="Expiration set on each scratch table, in case the drill cannot drop it."
    )

    @field_validator("to")
    @classmethod
    def _scratch(cls, value: str) -> str:
        if not SCRATCH_RE.match(value):
            raise Problem(f"{value!r} is not a dataset (expected PROJECT.DATASET or DATASET)")
        return value

    def scratch(self, project: str) -> str:
        """``PROJECT.DATASET`` of the scratch dataset."""
        return self.to if "." in self.to else f"{project}.{self.to}"


RESTORE_DRILL_FIELD: Any = Field(
    None,
    description="{schedule, sample, to, from}: restore `sample` tables of the latest in_sync runs on a schedule "
    "into a scratch dataset, compare them with their manifests (restore_verified / restore_failed) and drop them.",
)


def drill_source(
    drill: RestoreDrill, routes: tuple[DestinationId, ...], known: tuple[DestinationId, ...]
) -> DestinationId:
    """Where a drill reads: its ``from``, else the dataset's first destination, else the first configured one."""
    if drill.from_ is not None:
        return drill.from_
    if routes:
        return routes[0]
    if not known:
        raise Problem("no destination is configured to restore from")
    return known[0]


def drill_problems(datasets: Any, project: str, known: tuple[DestinationId, ...], problems: Any) -> None:
    """Rules that need the whole config: ``from`` is configured, ``to`` is not the dataset itself."""
    for i, entry in enumerate(datasets):
        drill: RestoreDrill | None = entry.restore_drill
        if drill is None:
            continue
        path = ("datasets", i, "restore_drill")
        if drill.from_ is not None and drill.from_ not in known:
            problems.add(
                (*path, "from"),
                f"{str(drill.from_)!r} is not a configured destination (configured: {', '.join(known) or 'none'})",
            )
        if drill.scratch(project) == f"{project}.{entry.name}":
            problems.add((*path, "to"), f"{drill.to!r} is the exported dataset; name a scratch dataset")
        if drill.from_ is None and not entry.destinations and not known:
            problems.add((*path, "from"), "no destination is configured to restore from")
