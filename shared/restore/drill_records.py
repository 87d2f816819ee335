"""The restore drill's requests and records in the state bucket (``restore-drill/D/…``): its
sample per drill, a marker per table reported, the per-dataset record. Kept apart from the drill
itself (shared/restore/drill.py) so that who only starts or follows a drill (the CLI, the HTTP
trigger: shared/restore/drill_watch.py) needs none of the backends a restore uses."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.config import Config, DatasetExport
from shared.config.restore_drill import RestoreDrill, drill_source
from shared.errors import RejectedInput
from shared.gcp import gcs
from shared.ids import DestinationId
from shared.message_fields import DatasetIdent, RunId, TableName
from shared.messages import Message

LOOKBACK_DAYS = 7
RECORDS = "restore-drill/"


class DrillPick(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    table: TableName
    run_id: RunId


class DrillRequest(Message):
    """restore-drills: ``{"dataset": D}`` starts a drill; with ``drill_id`` and ``picks`` it continues one."""

    KIND = "restore drill request"
    dataset: DatasetIdent
    drill_id: str | None = None
    picks: list[DrillPick] = []


def record_name(dataset: str) -> str:
    return f"{RECORDS}{dataset}/last.json"


def read_record(config: Config, dataset: str) -> dict[str, Any]:
    """``{"tables": {table: outcome}, "last_verified": outcome | None, "last": outcome | None}``."""
    found = gcs.read_json(config.state_bucket_name, record_name(dataset))
    return found if isinstance(found, dict) else empty_record()


def empty_record() -> dict[str, Any]:
    return {"tables": {}, "last_verified": None, "last": None}


def status_rows(config: Config, now: dt.datetime) -> list[dict[str, Any]]:
    """Per dataset with a restore_drill: its last proven restore (``last_proven``: table, run,
    destination, at), that proof's age in seconds, and its last drill's outcome (``last``): what
    ``offsite restore-drill status`` and the HTTP trigger's ``GET /restore-drill`` show."""
    rows = []
    for entry in config.datasets:
        if entry.restore_drill is None:
            continue
        record = read_record(config, entry.name)
        proven, last = record.get("last_verified"), record.get("last")
        age = None
        if proven and proven.get("at"):
            age = (now - dt.datetime.fromisoformat(proven["at"])).total_seconds()
        rows.append({"dataset": entry.name, "last_proven": proven, "age_s": age, "last": last})
    return rows


def drill_of(config: Config, dataset: str) -> tuple[DatasetExport, RestoreDrill]:
    entry = config.dataset(dataset)
    if entry is None:
        raise RejectedInput(f"restore drill: no dataset {dataset!r} in the config")
    if entry.restore_drill is None:
        raise RejectedInput(f"restore drill: dataset {dataset!r} has no restore_drill in the config")
    return entry, entry.restore_drill


def source_of(config: Config, entry: DatasetExport, drill: RestoreDrill) -> DestinationId:
    """The destination the drill restores from."""
    return drill_source(drill, entry.destinations, config.destination_names())


def drill_id_for(message_id: str | None) -> str | None:
    """The id of the drill a start message with this Pub/Sub message id begins (None: no usable id)."""
    kept = re.sub(r"[^A-Za-z0-9]", "", message_id or "")
    return "m" + kept[:40] if kept else None


def picks_name(dataset: str, drill_id: str) -> str:
    return f"{RECORDS}{dataset}/picks/{drill_id}.json"


def done_name(dataset: str, drill_id: str, table: str) -> str:
    """The marker of a table this drill has reported (a redelivery must not report it again)."""
    return f"{RECORDS}{dataset}/done/{drill_id}/{table}.json"


def drill_state(config: Config, dataset: str, drill_id: str) -> tuple[list[DrillPick] | None, dict[str, Any]]:
    """A drill's sample (None until it is chosen) and the done marker of each table reported so
    far (table → ``{run_id, status, reason}``): what ``offsite restore-drill run --wait`` follows."""
    bucket = config.state_bucket_name
    saved = gcs.read_json(bucket, picks_name(dataset, drill_id))
    if saved is None:
        return None, {}
    picks = [DrillPick.model_validate(p) for p in saved.get("picks", [])]
    done = {}
    for pick in picks:
        marker = gcs.read_json(bucket, done_name(dataset, drill_id, pick.table))
        if marker is not None:
            done[pick.table] = marker
    return picks, done
