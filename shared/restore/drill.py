"""The restore drill: prove on a schedule that a dataset's copies can be turned back into tables.

A drill of dataset D (``{"dataset": D}`` on ``restore-drills``, from its Cloud Scheduler job or
``offsite restore-drill run D``):

1. **Pick** ``sample`` tables, round-robin: the tables of D that have an ``in_sync`` run at the
   drill's destination in the run history of the last :data:`LOOKBACK_DAYS` days, the table
   drilled longest ago (or never) first, ties by name; each with its newest ``in_sync`` run.
   The start message only picks: it saves the sample (a redelivery finds it) and hands it on as
   the drill's first continuation (``{"dataset", "drill_id", "picks"}``), so every table is
   restored under a message naming its drill. A continuation dead-lettered (its destination down
   for every attempt) is settled by the dead-letter route: its tables not reported yet become
   ``restore_failed`` (:func:`settle_dead_letter`), and a wait on the drill ends.
2. **One table per invocation**: the first pick is restored — through ``shared.restore``, staged
   in the state bucket under ``restore-drill/staging/`` — into the scratch dataset as
   ``drill_{table}_{run_id}_{drill}_{attempt}``, given an expiration (``expiration_hours``), proven
   against its manifest (row count, schema, fingerprint), reported as ``restore_verified`` or
   ``restore_failed`` on verify-results (alerted like every failure) and recorded in
   ``restore-drill/{D}/last.json``; the scratch table is dropped and the staged objects deleted
   whatever happened. Staging folder and scratch table are unique to the attempt, so two drills
   of one table (a manual run during the scheduled one, a redelivery) never touch each other's.
   The remaining picks go on as one continuation message (``{"dataset", "drill_id", "picks"}``),
   so no invocation restores more than one table. A reported table leaves a marker
   (:func:`done_name`): a redelivered continuation skips straight to its own continuation.
3. A restore that would not finish within :data:`BUDGET_S` of the invocation is a
   ``restore_failed`` ("did not finish within the budget"): checked before each file is staged,
   between its chunks and before the load; the drill proves nothing about it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from shared import log
from shared.config import Config
from shared.destinations.factory import opened
from shared.errors import PermanentError, TransientError
from shared.gcp import clients, gcs, pubsub
from shared.gcp.bigquery import BigQueryWarehouse
from shared.gcp.bq_jobs import api_retry
from shared.ids import DestinationId, Stage, Status
from shared.messages import Source, VerifyResult
from shared.restore import restore as restoring
from shared.restore.drill_records import (
    LOOKBACK_DAYS,
    DrillPick,
    DrillRequest,
    done_name,
    drill_id_for,
    drill_of,
    empty_record,
    picks_name,
    read_record,
    record_name,
    source_of,
)
from shared.restore.stage import OutOfTime
from shared.topology import RESTORE_DRILLS

logger = log.get_logger(__name__)
BUDGET_S = 480.0  # of the function's 540 s: the rest reports, drops and publishes the continuation
STAGING_PREFIX = "restore-drill/staging"


def choose(config: Config, dataset: str, now: dt.datetime) -> list[DrillPick]:
    """The round-robin sample (module docstring, step 1)."""
    from shared.reporting.history import read

    entry, drill = drill_of(config, dataset)
    source = source_of(config, entry, drill)
    newest: dict[str, tuple[str, str]] = {}  # table -> (finished_at, run_id)
    for r in read(config.state_bucket_name, now - dt.timedelta(days=LOOKBACK_DAYS), now):
        s = r.source
        if r.status != Status.IN_SYNC or r.destination != source or r.run_id is None:
            continue
        if s is None or s.mode != "table" or s.dataset != dataset or not s.table:
            continue
        when = r.finished_at or ""
        if s.table not in newest or when >= newest[s.table][0]:
            newest[s.table] = (when, r.run_id)
    drilled = read_record(config, dataset).get("tables", {})
    order = sorted(newest, key=lambda t: (str((drilled.get(t) or {}).get("at") or ""), t))
    return [DrillPick(table=t, run_id=newest[t][1]) for t in order[: drill.sample]]


@dataclass(frozen=True)
class Outcome:
    pick: DrillPick
    status: Status
    reason: str | None
    target: str
    rows: int | None = None


def _start(config: Config, dataset: str, message_id: str | None, now: dt.datetime) -> tuple[str, list[DrillPick], bool]:
    """A new drill's id, its sample, and whether the sample was handed on already. Started by a
    Pub/Sub message, the id follows from the message id and the sample is saved: a redelivered
    start finds the sample its first delivery chose (the round-robin would put the table just
    drilled last and pick another) and whether that delivery published it."""
    drill_id = drill_id_for(message_id)
    if drill_id is None:
        return uuid.uuid4().hex[:8], choose(config, dataset, now), False
    bucket, name = config.state_bucket_name, picks_name(dataset, drill_id)
    saved = gcs.read_json(bucket, name)
    if saved is None:
        picks = choose(config, dataset, now)
        body = json.dumps({"picks": [p.model_dump() for p in picks]}).encode()
        if gcs.write_if_absent(bucket, name, body, "application/json"):
            return drill_id, picks, False
        saved = gcs.read_json(bucket, name)  # a concurrent twin saved its sample first
    saved = saved or {}
    return drill_id, [DrillPick.model_validate(p) for p in saved.get("picks", [])], bool(saved.get("handed_on"))


def _hand_on(config: Config, dataset: str, drill_id: str, picks: list[DrillPick]) -> None:
    """Publish the whole sample as the drill's first continuation and note it in the saved sample
    (a redelivered start then publishes nothing). Every table is drilled by a message naming its
    drill, so a dead letter of one can settle the drill (:func:`settle_dead_letter`)."""
    pubsub.publish(RESTORE_DRILLS, DrillRequest(dataset=dataset, drill_id=drill_id, picks=picks))
    gcs.update_json(
        config.state_bucket_name, picks_name(dataset, drill_id), lambda found: {**(found or {}), "handed_on": True}
    )


def scratch_table(scratch_dataset: str, pick: DrillPick, attempt: str) -> str:
    """The drill's own table in the scratch dataset, unique to the pick and the attempt (drill id
    and a token); a run id's ``-`` becomes ``_`` so the name stays a plain identifier in SQL
    (BigQuery caps it at 1,024)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"drill_{pick.table}_{pick.run_id}_{attempt}")
    return f"{scratch_dataset}.{name[:1024]}"


def drill_table(config: Config, dataset: str, pick: DrillPick, drill_id: str, deadline: float) -> Outcome:
    """Restore ``pick`` into the scratch dataset, prove it, drop it (module docstring, step 2)."""
    entry, drill = drill_of(config, dataset)
    source = source_of(config, entry, drill)
    attempt = f"{drill_id}_{uuid.uuid4().hex[:6]}"  # a concurrent twin of this drill gets its own names
    target = scratch_table(drill.scratch(config.project), pick, attempt)
    wh = BigQueryWarehouse(clients.bigquery_client())
    try:
        with opened(source, config) as destination:
            plan = restoring.plan(
                destination,
                pick.run_id,
                target=target,
                staging_bucket=config.state_bucket_name,
                table=f"{dataset}.{pick.table}",
                staging_prefix=STAGING_PREFIX,
                attempt=attempt,
            )
            result = restoring.execute(destination, plan, wh, deadline=deadline)
        _expire(wh, target, drill.expiration_hours)
    except OutOfTime as exc:
        return Outcome(pick, Status.RESTORE_FAILED, f"{exc} ({BUDGET_S:.0f} s)", target)
    except PermanentError as exc:
        return Outcome(pick, Status.RESTORE_FAILED, str(exc), target)
    except TransientError as exc:
        if time.monotonic() < deadline:
            raise  # redelivered: the drill of this table starts over
        return Outcome(
            pick, Status.RESTORE_FAILED, f"did not finish within the budget ({BUDGET_S:.0f} s): {exc}", target
        )
    finally:
        _drop(wh, target)
    proof = result.proof
    if proof is None or not proof.equal:
        problems = "; ".join(proof.problems) if proof else "nothing was compared"
        return Outcome(
            pick, Status.RESTORE_FAILED, f"restored table differs: {problems}", target, proof.rows if proof else None
        )
    checked = "row count, schema, fingerprint" if proof.fingerprint_checked else "row count, schema"
    return Outcome(pick, Status.RESTORE_VERIFIED, f"restored {proof.rows} rows, equal ({checked})", target, proof.rows)


def _expire(wh: BigQueryWarehouse, target: str, hours: int) -> None:
    """The scratch table's expiration, in case the drop below never happens (best effort)."""
    bounded = api_retry()  # the library's own retry would outlast the invocation
    try:
        table = wh.client.get_table(target, retry=bounded)
        table.expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
        wh.client.update_table(table, ["expires"], retry=bounded)
    except Exception as exc:  # noqa: BLE001 - the drop in drill_table's finally is what removes it
        logger.warning("could not set the scratch table's expiration", target=target, error=str(exc))


def _drop(wh: BigQueryWarehouse, target: str) -> None:
    try:
        wh.client.delete_table(target, not_found_ok=True, retry=api_retry())
    except Exception as exc:  # noqa: BLE001 - the table expires anyway
        logger.warning("could not drop the scratch table; it expires", target=target, error=str(exc))


def report(config: Config, dataset: str, outcome: Outcome, source: DestinationId, now: dt.datetime) -> None:
    """Publish the outcome on verify-results (alerts follow), then record it for ``offsite status``."""
    from shared.reporting.results import report as publish_result

    result = VerifyResult(
        status=outcome.status,
        destination=source,
        run_id=outcome.pick.run_id,
        source=Source(mode="table", project=config.project, dataset=dataset, table=outcome.pick.table),
        reason=outcome.reason,
        stage=Stage.RESTORE_DRILL,
        started_at=now.isoformat(),
    )
    publish_result(result, config=config)
    record(config, dataset, outcome, source)


def record(config: Config, dataset: str, outcome: Outcome, source: DestinationId) -> None:
    """The outcome as its table's entry and the dataset's last drill in ``last.json`` (what
    ``offsite restore-drill status`` shows)."""
    entry = {
        "table": outcome.pick.table,
        "run_id": outcome.pick.run_id,
        "status": str(outcome.status),
        "reason": outcome.reason,
        "destination": str(source),
        "rows": outcome.rows,
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }

    def recorded(found: Any) -> dict[str, Any]:
        # Two drills of one dataset may overlap (a manual run during the scheduled one): the
        # conditional update keeps both tables' entries.
        record: dict[str, Any] = found if isinstance(found, dict) else empty_record()
        record.setdefault("tables", {})[outcome.pick.table] = entry
        record["last"] = entry
        if outcome.status == Status.RESTORE_VERIFIED:
            record["last_verified"] = entry
        return record

    gcs.update_json(config.state_bucket_name, record_name(dataset), recorded)


def settle_dead_letter(config: Config, request: DrillRequest, reason: str) -> list[str]:
    """A dead-lettered drill message: each table of its sample not reported yet becomes
    ``restore_failed`` — its done marker, and its entry in ``last.json`` — so the drill ends for
    whoever follows it (``offsite restore-drill run --wait``, ``GET /restore-drill/...``) and the
    dataset's status names the failure. The dead letter itself is reported (and alerted) by the
    dead-letter route. A start message (no drill id) names no drill: nothing to settle. Returns
    the tables settled."""
    if not request.drill_id or not request.picks:
        return []
    entry, drill = drill_of(config, request.dataset)
    source = source_of(config, entry, drill)
    first, settled = request.picks[0].table, []
    for pick in request.picks:
        why = reason if pick.table == first else f"not restored: the drill stopped at {first}: {reason}"
        done = {"run_id": pick.run_id, "status": str(Status.RESTORE_FAILED), "reason": why}
        marker = done_name(request.dataset, request.drill_id, pick.table)
        if gcs.write_if_absent(config.state_bucket_name, marker, json.dumps(done).encode(), "application/json"):
            record(config, request.dataset, Outcome(pick, Status.RESTORE_FAILED, why, target=""), source)
            settled.append(pick.table)
    return settled


def handle(
    config: Config, request: DrillRequest, *, started: float, now: dt.datetime, message_id: str | None = None
) -> Outcome | None:
    """One invocation: pick (when starting), drill the first pick, continue with the rest. A
    table this drill has already reported (a redelivered start or continuation) is not drilled again."""
    entry, drill = drill_of(config, request.dataset)
    if request.drill_id:
        drill_id, picks = request.drill_id, request.picks
    else:
        drill_id, picks, handed_on = _start(config, request.dataset, message_id, now)
        if picks and not handed_on:
            _hand_on(config, request.dataset, drill_id, picks)
        if picks:
            logger.info("restore drill sample chosen", dataset=request.dataset, drill_id=drill_id, picks=len(picks))
            return None
    with log.bind(dataset=request.dataset, drill_id=drill_id):
        if not picks:
            logger.warning("restore drill: no in_sync run to restore", lookback_days=LOOKBACK_DAYS)
            return None
        first, rest = picks[0], picks[1:]
        source = source_of(config, entry, drill)
        marker = done_name(request.dataset, drill_id, first.table)
        outcome = None
        if gcs.read_json(config.state_bucket_name, marker) is not None:
            logger.info("restore drill table already reported; continuing", table=first.table, marker=marker)
        else:
            outcome = drill_table(config, request.dataset, first, drill_id, started + BUDGET_S)
            report(config, request.dataset, outcome, source, now)
            done = {"run_id": first.run_id, "status": str(outcome.status), "reason": outcome.reason}
            gcs.write_if_absent(config.state_bucket_name, marker, json.dumps(done).encode(), "application/json")
            logger.info("restore drill table done", table=first.table, status=str(outcome.status), left=len(rest))
        if rest:
            follow = DrillRequest(dataset=request.dataset, drill_id=drill_id, picks=rest)
            pubsub.publish(RESTORE_DRILLS, follow)
        return outcome
