"""``offsite restore``: a run's copy at a destination → staging bucket (SHA-1 checked) → one load
job → the restored table proven equal to the manifest.

Every file is staged and checked before the load starts, so a damaged file stops the restore
with nothing loaded. Nothing is read from the exports bucket: the manifest and the files come
from the destination.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared import log
from shared.destinations.base import Destination
from shared.errors import RejectedInput
from shared.gcp import clients, gcs
from shared.gcp.bigquery import BigQueryWarehouse
from shared.gcp.bq_jobs import api_retry, call
from shared.restore.load import Proof, load_job_config, parse_target, prove, run_load
from shared.restore.locate import RemoteRun, find_as_of, find_run
from shared.restore.stage import OutOfTime, StagedFile, stage_file, staging_folder, staging_name

logger = log.get_logger(__name__)
STAGING_PREFIX = "offsite-restore"


@dataclass(frozen=True)
class RestorePlan:
    """What a restore reads and loads (``--dry-run`` prints it)."""

    run: RemoteRun
    target: str
    disposition: str
    staging_bucket: str
    staging_folder: str  # unique to this restore attempt (stage.staging_folder)
    staged: list[str]

    def to_dict(self) -> dict[str, Any]:
        m = self.run.manifest
        return {
            "run_id": m.run_id,
            "source": m.source.label,
            "date": m.date,
            "format": m.format,
            "rows": m.row_count,
            "manifest": self.run.manifest_path,
            "files": [{"path": self.run.path_of(f.name), "size": f.size, "sha1": f.sha1} for f in m.files],
            "staging": self.staged,
            "to": self.target,
            "write_disposition": self.disposition,
            "fingerprint": m.fingerprint is not None,
        }


@dataclass(frozen=True)
class RestoreResult:
    plan: RestorePlan
    staged: list[StagedFile] = field(default_factory=list)
    proof: Proof | None = None
    job_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self.plan.to_dict()
        out.update(
            {
                "job_id": self.job_id,
                "restored_rows": self.proof.rows if self.proof else None,
                "equal": self.proof.equal if self.proof else None,
                "fingerprint_checked": self.proof.fingerprint_checked if self.proof else False,
                "problems": self.proof.problems if self.proof else [],
            }
        )
        return out


def plan(
    destination: Destination,
    run_id: str | None,
    *,
    target: str,
    staging_bucket: str,
    table: str | None = None,
    disposition: str = "empty",
    as_of: dt.date | None = None,
    staging_prefix: str = STAGING_PREFIX,
    attempt: str | None = None,
) -> RestorePlan:
    """Find the run at ``destination`` — by id, or the newest complete one of ``table`` on or
    before ``as_of`` — and say what would be read and loaded (nothing is written). The files are
    staged under ``staging_prefix/run_id/attempt`` (``attempt``: a new random token by default)."""
    if run_id:
        run = find_run(destination, run_id, table)
    elif as_of is not None and table:
        run = find_as_of(destination, table, as_of)
    else:
        raise RejectedInput("restore: name a RUN_ID, or --table DATASET.TABLE with --date YYYY-MM-DD")
    load_job_config(run.manifest, disposition)  # refuses a bad disposition before anything moves
    folder = staging_folder(staging_prefix, run.manifest.run_id, attempt or uuid.uuid4().hex[:8])
    staged = [gcs.uri(staging_bucket, staging_name(folder, f)) for f in run.manifest.files]
    return RestorePlan(run, parse_target(target), disposition, staging_bucket, folder, staged)


def execute(
    destination: Destination,
    restore_plan: RestorePlan,
    wh: BigQueryWarehouse | None = None,
    *,
    keep_staging: bool = False,
    deadline: float | None = None,
) -> RestoreResult:
    """Stage and check every file, load them with one job, prove the table. DamagedFile (nothing
    loaded) or PermanentError/TransientError from the destination, GCS or BigQuery. OutOfTime
    (nothing loaded) when ``deadline`` (``time.monotonic()``) passes before the load starts; the
    load job, then the proof's query (``<load job id>_proof``), are given what is left of it.

    The staged objects are deleted once the load job is over, whether it succeeded or not
    (``keep_staging`` keeps them, e.g. to load them again by hand)."""
    run = restore_plan.run
    staged: list[StagedFile] = []
    with log.bind(run_id=run.manifest.run_id, table=run.manifest.source.label, destination=destination.name):
        wh = wh or BigQueryWarehouse(clients.bigquery_client())
        require_dataset(wh, restore_plan.target)  # before anything is staged
        try:
            for f in run.manifest.files:
                _check_time(deadline, f"{len(staged)} of {len(run.manifest.files)} files staged")
                staged.append(
                    stage_file(destination, run, f, restore_plan.staging_bucket, restore_plan.staging_folder, deadline)
                )
            job_id = f"offsite_restore_{run.manifest.run_id}_{uuid.uuid4().hex[:8]}"
            left = _check_time(deadline, f"all {len(staged)} files staged")
            run_load(
                wh.client,
                [s.uri for s in staged],
                restore_plan.target,
                run.manifest,
                restore_plan.disposition,
                job_id,
                timeout_s=left,
            )
        finally:
            if not keep_staging:
                remove_staged(restore_plan.staging_bucket, staged)
        proof = None
        if restore_plan.disposition != "append":  # one query job, never run twice, within what is left of the deadline
            proof = prove(wh, restore_plan.target, run.manifest, job_id=f"{job_id}_proof", deadline=deadline)
        logger.info(
            "restored",
            target=restore_plan.target,
            job_id=job_id,
            equal=proof.equal if proof else None,
            problems=proof.problems if proof else None,
            staging_kept=keep_staging,
        )
        return RestoreResult(restore_plan, staged, proof, job_id)


def require_dataset(wh: BigQueryWarehouse, target: str) -> None:
    """RejectedInput when the dataset of ``target`` (``PROJECT.DATASET.TABLE``) does not exist: a
    load would stage every file first and fail only then (and bqemulator reports that failure as
    ``invalid``, not ``notFound``)."""
    from google.api_core import exceptions as gexc

    project, dataset, _ = target.split(".", 2)

    def exists() -> bool:
        try:
            wh.client.get_dataset(f"{project}.{dataset}", retry=api_retry())
        except gexc.NotFound:
            return False
        return True

    if not call(exists, f"reading dataset {project}.{dataset}"):
        raise RejectedInput(
            f"restore: the dataset {project}.{dataset} of {target} does not exist; create it first"
            f" (bq mk --dataset {project}:{dataset})"
        )


def _check_time(deadline: float | None, progress: str) -> float | None:
    """The seconds left before ``deadline`` (None: no deadline); OutOfTime once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise OutOfTime(f"did not finish within the budget: {progress}, the load was not started")
    return left


def remove_staged(bucket: str, staged: list[StagedFile]) -> None:
    """Delete the staged copies (best effort: a failure is logged, the lifecycle rule or the
    operator removes what is left)."""
    for s in staged:
        name = s.uri.removeprefix(f"gs://{bucket}/")
        try:
            gcs.delete(bucket, name)
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the restore's own outcome
            logger.warning("could not delete a staged file", staged=s.uri, error=str(exc))
