"""The one place a permanent failure becomes a reported result, and transient ones a retry.

- :func:`report_failure`: a ``PermanentError`` → one ``rejected``/``failed`` VerifyResult on
  verify-results (with the run, destination and source the error carries from ``log.bind``).
  A failure to report is logged, never raised: reporting must not turn into a retry storm.
  ``failed`` is reported once per (run folder, destination, stage): the first failure claims
  ``{run folder}_verify/{destination}/failed-{stage}.json`` in the state bucket
  (``if_generation_match=0``) and is published; later ones (the run's other files failing at
  the same destination, redeliveries) are logged and counted in that marker, which keeps the
  last error. Where the run folder is not known (no run id, source or date in the error's
  context, no destination) and for on-demand requests (``verify:request``, which always
  answer), every failure is published as before. A failure reported once under a claim of its
  stage's own (:func:`release_if_unreported`: export_table's once-per-run claim) has that claim
  released too when its report cannot be published, so a later attempt reports it.
- :func:`each`: run one piece of work per item (destinations of a file, run folders of a
  request) so that one failing does not hide the others. Once every item had its turn:
  transient failures are raised together (the event is redelivered; items already done skip
  as unchanged or already reported) after every permanent one was reported; with only
  permanent failures, all but the last are reported and the last is raised, so the stage
  reports it and acknowledges the event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from shared import log
from shared.errors import PermanentError, TransientError
from shared.ids import Stage, Status

if TYPE_CHECKING:
    from shared.messages import VerifyResult

logger = log.get_logger(__name__)
T = TypeVar("T")
HELD_CLAIM_ATTR = "held_claim"  # (bucket, name): see release_if_unreported


def context_of(exc: BaseException) -> dict[str, Any]:
    """What an error carries about where it happened (``shared.log.bind`` adds it)."""
    carried = getattr(exc, log.ERROR_CONTEXT_ATTR, None)
    return carried if isinstance(carried, dict) else {}


def release_if_unreported(exc: PermanentError, bucket: str, name: str) -> None:
    """``exc`` holds the claim ``name`` that reports it once: :func:`report_failure` deletes the
    claim when the report cannot be published, so a later attempt claims and reports it."""
    setattr(exc, HELD_CLAIM_ATTR, (bucket, name))


def report_failure(stage: Stage | str, exc: PermanentError, *, message_id: str | None = None) -> bool:
    """Publish ``exc`` as a ``rejected``/``failed`` result of ``stage`` (once per run folder,
    destination and stage for ``failed``: module docstring); never raises. False when it could
    not be published (its claims are released: :func:`release_if_unreported`)."""
    from shared.messages import VerifyResult
    from shared.reporting.results import report

    context = context_of(exc)
    source = context.get("source")
    marker: tuple[str, str] | None = None
    held = getattr(exc, HELD_CLAIM_ATTR, None)
    try:
        result = VerifyResult(
            status=exc.status,
            stage=str(context.get("stage") or stage),
            reason=str(exc),
            message_id=str(context.get("message_id") or message_id or "") or None,
            request_id=context.get("request_id"),
            run_id=context.get("run_id"),
            destination=str(context["destination"]) if context.get("destination") else None,
            source=source,
            date=context.get("date"),
        )
        marker = _failed_marker(result)
        if marker is not None:
            try:
                first = _claim(marker, result)
            except Exception as claim_exc:  # noqa: BLE001 - cannot tell: publish rather than lose it
                logger.warning("could not claim the failure marker; publishing", error=str(claim_exc))
                marker, first = None, True
            if not first:
                return True
        report(result)
    except Exception as report_exc:  # noqa: BLE001 - see module docstring
        logger.error("could not report failure", error=str(report_exc), original=str(exc))
        for claim in (marker, held):
            if claim is not None:
                _release(claim)  # so a later failure (or attempt) of this run is reported
        return False
    return True


def _failed_marker(result: VerifyResult) -> tuple[str, str] | None:
    """(state bucket, ``{run folder}_verify/{destination}/failed-{stage}.json``) of a ``failed``
    result whose run folder is known; None where every failure is published."""
    if result.status != Status.FAILED or result.stage in (None, Stage.VERIFY_REQUEST):
        return None
    if not (result.run_id and result.destination and result.source and result.date):
        return None
    from shared import runtime
    from shared.layout import RunFolder
    from shared.verify.markers import Kind, marker

    try:
        config = runtime.config()
        folder = RunFolder(
            config.export_prefix.strip("/"), result.source, dt.date.fromisoformat(result.date), result.run_id
        )
        name = marker(folder.prefix, str(result.destination), Kind.FAILED, str(result.stage))
    except Exception as exc:  # noqa: BLE001 - not derivable: publish as before
        logger.info("failure not deduplicated (no run folder)", error=str(exc))
        return None
    return config.state_bucket_name, name


def _claim(marker: tuple[str, str], result: VerifyResult) -> bool:
    """True when this is the first ``failed`` of the run folder, destination and stage (publish it)."""
    from shared.gcp import gcs
    from shared.verify.markers import claim

    bucket, name = marker
    body = {**result.to_dict(), "failures": 1, "last_reason": result.reason}
    if claim(bucket, name, body):
        return True
    logger.warning(
        "failure already reported for this run, destination and stage; logged, not republished",
        error=result.reason,
        run_id=result.run_id,
        destination=str(result.destination),
        stage=str(result.stage),
        marker=gcs.uri(bucket, name),
    )

    def counted(found: Any) -> dict[str, Any]:
        first = found if isinstance(found, dict) else body
        count = int(first.get("failures") or 1) + 1
        return {**first, "failures": count, "last_reason": result.reason, "last_at": _now()}

    try:  # best effort: the count (exact under concurrency: a conditional update) and the last error
        gcs.update_json(bucket, name, counted)
    except Exception as exc:  # noqa: BLE001 - the marker is informative beyond its existence
        logger.info("could not count the repeated failure", error=str(exc))
    return False


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _release(marker: tuple[str, str]) -> None:
    from shared.verify.markers import release

    try:
        release(*marker)
    except Exception as exc:  # noqa: BLE001 - never raises (module docstring)
        logger.error("could not release the failure marker", error=str(exc), marker=marker[1])


def each(
    stage: Stage | str,
    items: Iterable[T],
    work: Callable[[T], object],
    context: Callable[[T], Mapping[str, Any]] = lambda _: {},
) -> None:
    """``work(item)`` for every item (see the module docstring); what ``work`` returns is not used."""
    permanent: list[PermanentError] = []
    transient: list[BaseException] = []
    for item in items:
        extra = dict(context(item))
        try:
            with log.bind(**extra):
                work(item)
        except PermanentError as exc:
            logger.error("permanent failure for one item", error=str(exc), **_loggable(extra))
            context_of(exc).setdefault("stage", str(stage))  # log.bind attached the context
            permanent.append(exc)
        except Exception as exc:  # noqa: BLE001 - finish the others first, then retry the event
            logger.warning("failure for one item; the event will be retried", error=str(exc), **_loggable(extra))
            transient.append(exc)
    for failure in permanent if transient else permanent[:-1]:
        report_failure(stage, failure)
    if len(transient) == 1:
        raise transient[0]
    if transient:
        waits = [e.retry_after for e in transient if isinstance(e, TransientError) and e.retry_after]
        summary = "; ".join(str(e) for e in transient)
        raise TransientError(f"{len(transient)} items to retry: {summary}", retry_after=max(waits, default=None))
    if permanent:
        raise permanent[-1]


def _loggable(extra: Mapping[str, Any]) -> dict[str, Any]:
    return {k: str(v) for k, v in extra.items() if k in ("destination", "run_id")}
