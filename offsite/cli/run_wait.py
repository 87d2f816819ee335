"""``offsite run --wait``: follow a published export request to its end.

``--until`` names the end:
- ``verified`` (the default): every table has a final verify result at every destination, read
  from the run history exactly as the HTTP trigger's ``POST /sync?wait=`` reads it
  (:mod:`shared.http_trigger.progress`); the command succeeds only if all are ``in_sync``.
- ``exported``: every table's ``_manifest.json`` is written.

Either wait ends early for a table whose export the history reports failed or rejected (no
manifest will come for it). While waiting a live table (plain lines when not on a terminal)
shows each table's export (files, bytes, rate since the request was published) and, until
verified, each destination: waiting, delivering, then its verify result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from shared import retry
from shared.config import Config
from shared.errors import OffsiteError, TransientError
from shared.messages import ExportRequest, TableExport, VerifyResult

if TYPE_CHECKING:
    from offsite.cli.progress import Row
    from shared.http_trigger.progress import RunProgress, TableProgress

HISTORY_SLACK = dt.timedelta(minutes=1)  # a failure recorded by a host whose clock is behind ours still counts
POLL_S = 1.0


class Until(StrEnum):
    """Where ``offsite run --wait`` stops waiting."""

    EXPORTED = "exported"
    VERIFIED = "verified"


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expected_exports(request: ExportRequest, cfg: Config, published_at: dt.datetime) -> list[TableExport]:
    """What fan_out will publish for this request (its plan, with our publish time), reporting
    nothing: fan_out itself reports a table it leaves out."""
    from shared.gcp.bigquery import warehouse
    from shared.stages import fan_out

    wh = warehouse() if request.dataset else None
    assert request.run_id is not None
    return fan_out.expected_exports(request, cfg, wh, run_id=request.run_id, publish_time=rfc3339(published_at))


def manifest_names(request: ExportRequest, cfg: Config, planned: list[TableExport]) -> dict[str, list[str]]:
    """Per source label, the ``_manifest.json`` names that finish it (either is enough).

    The scheduled day comes from the publish time, which lies between the plan made before
    publishing (``planned``) and now: around midnight the two may be different days, so both
    candidates are watched.
    """
    try:
        later = expected_exports(request, cfg, dt.datetime.now(dt.UTC))
    except TransientError:
        later = []  # BigQuery away for a moment: the plan made before publishing stands (midnight aside)
    pending: dict[str, list[str]] = {}
    for task in planned + later:
        names = pending.setdefault(task.source.label, [])
        if task.prefix + "_manifest.json" not in names:
            names.append(task.prefix + "_manifest.json")
    return pending


@dataclasses.dataclass(frozen=True)
class Waited:
    """How the wait ended: complete (every table at its end), the manifests found, what failed
    (per table, and with ``--until verified`` per destination), and the run's verify progress."""

    complete: bool
    manifests: list[dict[str, Any]]
    failures: list[dict[str, Any]]  # source, [destination,] status, stage, reason
    run: RunProgress | None = None  # --until verified

    @property
    def succeeded(self) -> bool:
        return self.complete and not self.failures

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"complete": self.complete, "manifests": self.manifests, "failures": self.failures}
        if self.run is not None:
            out["verified"] = self.run.to_dict()
        return out


def wait_for_run(
    request: ExportRequest,
    cfg: Config,
    published_at: dt.datetime,
    planned: list[TableExport],
    timeout_s: float,
    *,
    until: Until = Until.VERIFIED,
    show: bool = True,
) -> Waited:
    """Poll GCS (the manifests, the run history) until every table reached ``until``, its export
    is reported failed, or ``timeout_s`` passes; show the progress when ``show``."""
    from offsite.cli.progress import Board

    try:
        pending = manifest_names(request, cfg, planned)
    except OffsiteError as exc:
        typer.echo(f"error: cannot tell which manifests to wait for: {exc}", err=True)
        return Waited(False, [], [])
    assert request.run_id is not None
    watch = _Watch(request.run_id, sorted(pending), planned, until)
    deadline = time.monotonic() + timeout_s
    # No retry inside a poll waits past the deadline: with GCS away, a poll's reads would otherwise
    # each retry for a minute, and the wait overrun its --timeout by minutes.
    with (
        retry.waits_end_by(deadline),
        Board(f"offsite run {request.run_id}", plain_rows=False) if show else _Silent() as board,
    ):
        board.log(f"waiting for {len(watch.labels)} export(s): {', '.join(watch.labels)}")
        while True:
            watch.unread = None
            for label, names in list(pending.items()):
                try:
                    done = _read_manifest(cfg, label, names, published_at)
                except TransientError as exc:
                    watch.unread = str(exc)
                    break  # GCS away for a moment: the next poll reads the rest
                if done is not None:
                    watch.found[label] = done
                    del pending[label]
                    board.log(f"done: {label}: {done['rows']} rows in {done['files']} files, {done['manifest']}")
            for line in watch.read_history(cfg, published_at):
                board.log(line)
            board.update(watch.rows())
            if watch.finished or time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
    watch.explain(timeout_s)
    return watch.outcome()


@dataclasses.dataclass
class _Watch:
    """What the wait knows: manifests found, exports reported failed, the run's verify progress."""

    run_id: str
    labels: list[str]
    planned: list[TableExport]
    until: Until
    found: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    failed: dict[str, VerifyResult] = dataclasses.field(default_factory=dict)  # label → its export's failure
    run: RunProgress | None = None
    unread: str | None = None  # why this poll could not read GCS (None: it could)
    _told: set[tuple[str, str]] = dataclasses.field(default_factory=set)

    def read_history(self, cfg: Config, published_at: dt.datetime) -> list[str]:
        """Read the run's results; the lines to log for the deliveries that became final."""
        from shared.http_trigger import progress
        from shared.reporting.history import read

        try:
            results = read(cfg.state_bucket_name, published_at - HISTORY_SLACK, run_ids=[self.run_id])
        except TransientError as exc:
            self.unread = str(exc)
            return []  # the history is read again at the next poll; the manifests and the timeout still decide
        self.failed = _export_failures(results, set(self.labels) - set(self.found))
        if self.until is not Until.VERIFIED:
            return []
        expected = {
            t.source.label: (t.source.table, t.date.isoformat(), tuple(map(str, t.destinations))) for t in self.planned
        }
        self.run = progress.progress(self.run_id, expected, results)
        lines = []
        for table, dest, result in self._final():
            if (table.label, dest) not in self._told:
                self._told.add((table.label, dest))
                lines.append(f"verified: {table.label} → {dest}: {result.status} ({_counts(result)})")
        return lines

    def _final(self) -> list[tuple[TableProgress, str, VerifyResult]]:
        from shared.http_trigger.progress import FINAL

        if self.run is None:
            return []
        return [
            (table, dest, result)
            for table in self.run.tables
            for dest, result in sorted(table.destinations.items())
            if result is not None and result.status in FINAL
        ]

    @property
    def finished(self) -> bool:
        if self.until is Until.EXPORTED:
            return set(self.labels) <= set(self.found) | set(self.failed)
        done = {t.label for t in self.run.tables if t.done} if self.run else set()
        return bool(self.labels) and set(self.labels) <= done | set(self.failed)

    def rows(self) -> list[Row]:
        from offsite.cli.progress import Row

        rows = []
        tables = {t.label: t for t in self.run.tables} if self.run else {}
        for label in self.labels:
            rows.append(_export_row(self.run_id, label, self.found.get(label), self.failed.get(label)))
            table = tables.get(label)
            for dest, result in sorted(table.destinations.items()) if table else []:
                if result is None:
                    status = "delivering" if label in self.found else "waiting"
                    rows.append(Row(self.run_id, label, "deliver", dest, status))
                else:
                    rows.append(Row.verified(self.run_id, label, dest, result))
        return rows

    def explain(self, timeout_s: float) -> None:
        """On stderr: each export reported failed, each delivery finally not in_sync, then what
        has not reached its end."""
        for failure in self.failures():
            dest = failure.get("destination")
            what = f"{failure['source']} → {dest}: " if dest else f"{failure['source']}: export "
            line = f"error: {what}{failure['status']} ({failure['stage']}): {failure['reason'] or ''}"
            typer.echo(line.rstrip(), err=True)
        if self.until is Until.EXPORTED:
            missing = sorted(set(self.labels) - set(self.found) - set(self.failed))
            if missing:
                typer.echo(f"error: no manifest after {timeout_s:.0f}s for: {', '.join(missing)}", err=True)
        else:
            open_ = self._open()
            if open_:
                typer.echo(f"error: no final verify result after {timeout_s:.0f}s for: {', '.join(open_)}", err=True)
        if not self.finished and self.unread:
            typer.echo(
                f"error: the last poll could not read GCS, so this is what was known before: {self.unread}", err=True
            )
        if not self.finished:
            where = f"`offsite status --run-id {self.run_id}` and `offsite logs --run-id {self.run_id}`"
            typer.echo(f"hint: {where} show where it is", err=True)

    def _open(self) -> list[str]:
        """``label → destination (status)`` of every delivery with no final result, of a table whose export did not fail."""
        from shared.http_trigger.progress import FINAL

        tables = {t.label: t for t in self.run.tables} if self.run else {}
        out = []
        for label in self.labels:
            if label in self.failed:
                continue
            table = tables.get(label)
            if table is None or not table.destinations:
                out.append(f"{label} ({'exported' if label in self.found else 'not exported'})")
                continue
            for dest, result in sorted(table.destinations.items()):
                if result is None or result.status not in FINAL:
                    out.append(f"{label} → {dest} ({table.status_of(dest)})")
        return out

    def failures(self) -> list[dict[str, Any]]:
        """Each export reported failed (per table), then each delivery whose final result is not
        in_sync (per table and destination, for a table whose export did not fail)."""
        failures = [_failure(label, None, r) for label, r in sorted(self.failed.items())]
        for table, dest, r in self._final():
            if r.status != "in_sync" and table.label not in self.failed:
                failures.append(_failure(table.label, dest, r))
        return failures

    def outcome(self) -> Waited:
        failures = self.failures()
        manifests = [self.found[label] for label in self.labels if label in self.found]
        return Waited(self.finished, manifests, failures, self.run)


def _failure(source: str, destination: str | None, r: VerifyResult) -> dict[str, Any]:
    where = {"destination": destination} if destination else {}
    return {"source": source, **where, "status": str(r.status), "stage": r.stage and str(r.stage), "reason": r.reason}


def _counts(result: VerifyResult) -> str:
    check = f", {result.check}" if result.check else ""
    return f"files {result.files_present}/{result.files_expected}{check}"


def _export_failures(results: list[VerifyResult], labels: set[str]) -> dict[str, VerifyResult]:
    """Per label of ``labels``, the run's last failed/rejected result that means its manifest will
    not come: its table's export failed or was dead-lettered (export_table), or fan_out refused
    the whole request (no source: every table)."""
    from shared.ids import Stage

    failures: dict[str, VerifyResult] = {}
    for r in results:  # oldest first: the last one wins
        if r.status not in ("failed", "rejected") or r.stage not in (Stage.FAN_OUT, Stage.EXPORT_TABLE):
            continue
        for label in labels if r.source is None else {r.source.label} & labels:
            failures[label] = r
    return failures


def _read_manifest(cfg: Config, label: str, names: list[str], published_at: dt.datetime) -> dict[str, Any] | None:
    """The first of ``names`` that exists, summarised; None while none does."""
    from shared.gcp import gcs
    from shared.manifest import Manifest

    for name in names:
        data = gcs.read_bytes(cfg.bucket, name)
        if data is None:
            continue
        manifest = Manifest.from_json(data, name)
        return {
            "source": label,
            "manifest": f"gs://{cfg.bucket}/{name}",
            "files": len(manifest.files),
            "rows": manifest.row_count,
            "bytes": manifest.total_bytes,
            "seconds": round((dt.datetime.now(dt.UTC) - published_at).total_seconds(), 1),
        }
    return None


def _export_row(run_id: str, label: str, done: dict[str, Any] | None, failure: VerifyResult | None) -> Row:
    from offsite.cli.progress import Row

    if done is None:
        return Row(run_id, label, "export", None, str(failure.status) if failure else "waiting")
    rate = done["bytes"] / done["seconds"] if done["seconds"] > 0 else None
    return Row(run_id, label, "export", None, "done", str(done["files"]), done["bytes"], rate)


class _Silent:
    """A board that shows nothing (``--json``)."""

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def log(self, text: str) -> None:
        return None

    def update(self, rows: list[Row]) -> None:
        return None
