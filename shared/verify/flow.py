"""One verification of one run folder at one destination: compare, then decide what to publish.

The engine (:mod:`shared.verify.engine`) says what differs; this module decides, with the GCS markers
of :mod:`shared.verify.markers`, whether that is the moment to publish and what:

- receipt / manifest triggers (automatic): nothing until every file of the manifest is at
  the destination and none is being rewritten (a partial file of a manifest file: its
  delivery's receipt comes next, or the sweep decides if that writer died); then exactly one ``in_sync`` or ``mismatch`` per heal round, claimed with
  ``result-{k}.json``. A mismatch that self-heal can repair is not published: the heal
  starts (round k+1) and the round's result comes after the re-deliveries are receipted.
  So without outside intervention each (run, destination) gets exactly one in_sync/mismatch.
- on-demand (verify-requests): always publishes what it found (``incomplete`` while files
  are missing and the destination never had a result; else ``in_sync``/``mismatch``) and
  starts a heal for a repairable mismatch; that heal's round ends in one more automatic result.
- sweep (past the deadline, no result yet): ``incomplete`` once per round (``incomplete-{k}``)
  with what is missing, and a heal of the missing files (started by a later sweep when a
  transient error came between the two); a complete run is decided as above.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import hashlib
from dataclasses import dataclass

from shared import log
from shared.config import Config
from shared.destinations import factory
from shared.gcp import gcs
from shared.layout import RemoteFolder, RunFolder, remote_folder, remote_manifest_name
from shared.manifest import Manifest, ManifestFile
from shared.messages import DeliveryReceipt, VerifyResult
from shared.reporting.results import report
from shared.verify import heal as verify_heal
from shared.verify import markers as verify_markers
from shared.verify import readback
from shared.verify.engine import Comparison, ReadBack, SourceSha1, compare
from shared.verify.heal import HealPlan
from shared.verify.markers import VerifyState
from shared.verify.rows import rows_note
from shared.verify.runs import RunObjects
from shared.verify.superseded import without_superseded

logger = log.get_logger(__name__)
WOULD_REMOVE = "would be removed by verify"  # offsite verify's note: what it left in place


class Trigger(enum.Enum):
    RECEIPT = "receipt"
    MANIFEST = "manifest"
    REQUEST = "request"
    SWEEP = "sweep"
    RECHECK = "recheck"

    @property
    def automatic(self) -> bool:
        return self in (Trigger.RECEIPT, Trigger.MANIFEST)

    @property
    def stage(self) -> str:
        """``stage`` of the published result: verify (automatic), verify:request, verify:sweep, verify:recheck."""
        return "verify" if self.automatic else f"verify:{self.value}"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class RunContext:
    """A run folder whose manifest exists, and the settings verify needs."""

    config: Config
    folder: RunFolder
    manifest: Manifest
    message_id: str | None = None

    @property
    def bucket(self) -> str:
        """The exports bucket: the run's files, its manifest."""
        return self.config.bucket

    @property
    def state_bucket(self) -> str:
        """Where verify's markers live (never in the exports bucket: no write there fires an upload)."""
        return self.config.state_bucket_name

    @property
    def prefix(self) -> str:
        return self.folder.prefix


def verify_destination(
    ctx: RunContext,
    destination: str,
    trigger: Trigger,
    *,
    receipt: DeliveryReceipt | None = None,
    now: dt.datetime | None = None,
) -> VerifyResult | None:
    """Verify ``destination`` for ``ctx``'s run; returns the result it published, or None."""
    with log.bind(run_id=ctx.folder.run_id, table=ctx.folder.source.label, destination=destination):
        state = verify_markers.read_state(ctx.state_bucket, ctx.prefix, destination)
        if trigger.automatic and state.reported:
            logger.info("already reported for this round", round=state.round, trigger=trigger.value)
            return None
        heal_body = (
            verify_heal.attempt_body(ctx.state_bucket, ctx.prefix, destination, state.round) if state.round else None
        )
        if receipt is not None and heal_body is not None:
            state = verify_heal.note_receipt(ctx.state_bucket, ctx.prefix, receipt, state, heal_body)
        if trigger.automatic and not verify_heal.settled(state, heal_body):
            logger.info("waiting for the self-heal re-deliveries", attempt=state.round)
            return None
        objects = RunObjects(ctx.bucket, ctx.folder)
        # Automatic triggers look at names and sizes first: hashing (maybe downloading) every
        # present file on each receipt of a run still arriving would read it n times over.
        comparison = run_comparison(ctx, destination, objects.sha1, names_first=trigger.automatic)
        if trigger.automatic and (not comparison.complete or comparison.in_flight):
            # In flight: a (re)delivery is writing one of the run's files; its receipt decides,
            # or the sweep does when that writer died.
            logger.info(
                "not complete yet",
                missing=len(comparison.missing),
                present=comparison.files_present,
                in_flight=list(comparison.in_flight),
            )
            return None
        started = objects.started
        now = now or utcnow()
        decision = _Decision(ctx, destination, trigger, state, comparison, objects, started, now)
        if trigger is Trigger.REQUEST:
            return decision.on_demand()
        if not comparison.complete:
            return decision.incomplete()  # the sweep's: automatic triggers returned above
        return decision.complete()


def run_comparison(
    ctx: RunContext,
    destination: str,
    source_sha1: SourceSha1 | None,
    *,
    download: bool | None = None,
    names_first: bool = False,
    remove_superseded: bool = True,
) -> Comparison:
    """The engine on the destination built from config (the engine itself never opens one).

    ``download`` overrides ``verify.download_hashes`` (``offsite verify --size-only``).
    ``names_first``: when files are missing, return the names-and-sizes comparison without hashing.
    ``remove_superseded``: delete what a superseded same-day run left in a shared folder
    (:mod:`shared.verify.superseded`); False (``offsite verify``) only names it in ``would_remove``.
    """
    config = ctx.config
    with factory.opened(destination, config) as dest:
        folder = remote_folder(dest.abilities.layout, ctx.folder, ctx.manifest.file_name)
        copy = functools.partial(manifest_copy_entry, ctx, folder)  # asked after the listing
        if names_first:
            quick = compare(ctx.manifest, dest, folder, source_sha1=None, also_expected=copy)
            if not quick.complete:
                return quick

        def check(deadline: float | None, read_back: ReadBack | None) -> Comparison:
            """The comparison, then (``verify.rows``) the records: one read-back, one deadline."""
            comparison = compare(
                ctx.manifest,
                dest,
                folder,
                source_sha1=source_sha1,
                download_hashes=config.verify.download_hashes if download is None else download,
                also_expected=copy,
                deadline=deadline,
                read_back=read_back,
            )
            comparison = without_superseded(
                config, ctx.folder, dest, folder, comparison, remove=remove_superseded, now=utcnow()
            )
            if not (config.verify.rows and comparison.in_sync):
                return comparison
            note = rows_note(ctx.manifest, dest, folder, deadline=deadline, counted=read_back)
            return dataclasses.replace(comparison, rows_note=note)

        rows = config.verify.rows
        comparison = readback.bounded(
            ctx.state_bucket,
            readback.record_name(ctx.prefix, destination),
            dest,
            check,
            deadline=readback.invocation_deadline(dest, counts_records=rows),
            counts_records=rows,
        )
    if comparison.check_note:
        logger.warning("weaker check", check=comparison.check, why=comparison.check_note)
    return comparison


def manifest_copy_entry(ctx: RunContext, folder: RemoteFolder) -> tuple[ManifestFile, ...]:
    """The run's delivered manifest as a file every destination must hold, under its remote name
    (``shared.delivery.manifest_copy``), with the size and SHA-1 of its bytes in GCS.

    Asked after the destination was listed: a copy listed there was written to GCS before, so it
    is found here. Read now (a few KB), not from a listing of the run taken earlier."""
    name = ctx.folder.delivered_manifest_name
    remote_name = remote_manifest_name(folder, ctx.folder.run_id)
    data = gcs.read_bytes(ctx.bucket, name)  # None until the first destination holds every data file
    if data is None:
        return (ManifestFile(name=remote_name, object=name, size=0),)
    return (ManifestFile(name=remote_name, object=name, size=len(data), sha1=hashlib.sha1(data).hexdigest()),)


def publish_once(state_bucket: str, marker: str, result: VerifyResult, *, config: Config | None = None) -> bool:
    """Claim ``marker`` (if_generation_match=0) and report ``result``; False when another instance
    claimed it first."""
    if not verify_markers.claim(state_bucket, marker, result.to_dict()):
        return False
    try:
        report(result, config=config)
    except Exception:
        # Unclaim so the redelivered trigger can publish it; otherwise the result is lost.
        verify_markers.release(state_bucket, marker)
        raise
    return True


@dataclass
class _Decision:
    ctx: RunContext
    destination: str
    trigger: Trigger
    state: VerifyState
    comparison: Comparison
    objects: RunObjects
    started: dt.datetime | None
    now: dt.datetime

    # ---- the three situations ------------------------------------------------------------

    def complete(self) -> VerifyResult | None:
        """Every file is there: in_sync, or heal, or mismatch — one result per round."""
        marker = verify_markers.marker(self.ctx.prefix, self.destination, verify_markers.Kind.RESULT, self.state.round)
        if self.comparison.in_sync:
            return self._publish_once(marker, self._result("in_sync"))
        heal_note, healing = self._heal()
        if healing:
            return None
        return self._publish_once(marker, self._result("mismatch", heal_note))

    def incomplete(self) -> VerifyResult | None:
        """Past the deadline with files missing (sweep): report once per round, then heal."""
        plan, note = self._heal_plan()
        attempts = self.state.heal_attempts + (1 if plan else 0)
        result = self._result("incomplete", note, heal_attempts=attempts)
        marker = verify_markers.marker(
            self.ctx.prefix, self.destination, verify_markers.Kind.INCOMPLETE, self.state.round
        )
        published = self._publish_once(marker, result)
        if plan is not None:
            # Also when the result was out already: the sweep that published it may have failed
            # before its heal (sweep_run comes back for an announced heal); the heal claim is once only.
            self._start_heal(plan)
        return published

    def on_demand(self) -> VerifyResult:
        """Always report; start a heal for a repairable mismatch."""
        status = classify(self.comparison, self.state)
        note, attempts = None, self.state.heal_attempts
        if status == "mismatch":
            note, healing = self._heal()
            attempts += 1 if healing else 0
        result = self._result(status, note, heal_attempts=attempts)
        report(result)
        return result

    # ---- healing -------------------------------------------------------------------------

    def _heal_plan(self) -> tuple[HealPlan | None, str | None]:
        """What a heal would re-deliver now, or why there is none."""
        settings = self.ctx.config.verify
        repairable = self.comparison.repairable
        if not repairable:
            return None, None
        if not settings.self_heal:
            return None, "self-heal is off (verify.self_heal)"
        if self.state.heal_attempts >= settings.max_heal_attempts:
            return None, f"self-heal attempts used: {self.state.heal_attempts} of {settings.max_heal_attempts}"
        plan = verify_heal.plan(self.ctx.manifest, self.objects, repairable, self.state.heal_attempts + 1)
        if not plan.files:
            return None, f"cannot re-deliver: gone from GCS ({', '.join(plan.gone)})"
        note = f"self-heal attempt {plan.attempt} of {settings.max_heal_attempts} re-delivers {len(plan.files)} file(s)"
        if plan.gone:
            note += f"; gone from GCS, not re-deliverable: {', '.join(plan.gone)}"
        return plan, note

    def _heal(self) -> tuple[str | None, bool]:
        """Start a heal if one is possible; (note for the result, whether a heal is under way)."""
        plan, note = self._heal_plan()
        if plan is None:
            return note, False
        self._start_heal(plan)
        return note, True

    def _start_heal(self, plan: HealPlan) -> bool:
        return verify_heal.start(
            self.ctx.bucket,
            self.ctx.prefix,
            self.destination,
            plan,
            reason=self.comparison.summary(),
            now=self.now,
            state_bucket=self.ctx.state_bucket,
        )

    # ---- results -------------------------------------------------------------------------

    def _publish_once(self, marker: str, result: VerifyResult) -> VerifyResult | None:
        """Claim ``marker`` and publish; None when another instance did."""
        if not publish_once(self.ctx.state_bucket, marker, result):
            logger.info("result already claimed by another instance", marker=marker)
            return None
        return result

    def _result(self, status: str, note: str | None = None, *, heal_attempts: int | None = None) -> VerifyResult:
        return build_result(
            self.ctx,
            self.destination,
            self.comparison,
            status,
            self.trigger,
            heal_attempts=self.state.heal_attempts if heal_attempts is None else heal_attempts,
            note=note,
            started=self.started,
            now=self.now,
        )


def classify(comparison: Comparison, state: VerifyState) -> str:
    """The status of a comparison asked for now (on demand, ``offsite verify``).

    Missing files on a destination that never had a result mean it is still being delivered
    (or never completed): ``incomplete``. After a result, anything missing is a ``mismatch``.
    """
    if comparison.in_sync:
        return "in_sync"
    if comparison.missing and not state.ever_reported:
        return "incomplete"
    return "mismatch"


def build_result(
    ctx: RunContext,
    destination: str,
    comparison: Comparison,
    status: str,
    trigger: Trigger,
    *,
    heal_attempts: int,
    note: str | None,
    started: dt.datetime | None,
    now: dt.datetime,
) -> VerifyResult:
    """The verify-results message for one comparison."""
    reasons = []
    if status != "in_sync":
        reasons.append(comparison.summary())
    elif heal_attempts:
        reasons.append(f"in sync after {heal_attempts} self-heal attempt(s)")
    if comparison.removed:
        reasons.append(
            f"removed {len(comparison.removed)} file(s) a superseded run of the same day left: "
            + ", ".join(comparison.removed)
        )
    if comparison.would_remove:
        reasons.append(
            f"{WOULD_REMOVE} (a superseded run of the same day left them): " + ", ".join(comparison.would_remove)
        )
    if comparison.check_note:
        reasons.append(f"check {comparison.check}: {comparison.check_note}")
    if note:
        reasons.append(note)
    return VerifyResult(
        status=status,
        destination=destination,
        run_id=ctx.folder.run_id,
        source=ctx.manifest.source,
        check=comparison.check,
        **comparison.counts(),
        heal_attempts=heal_attempts,
        reason="; ".join(reasons) or None,
        stage=trigger.stage,
        message_id=ctx.message_id,
        manifest=gcs.uri(ctx.bucket, ctx.folder.manifest_name),
        date=ctx.manifest.date,
        started_at=started.isoformat() if started else None,
        finished_at=now.isoformat(),
        duration_s=round((now - started).total_seconds(), 3) if started else None,
    )
