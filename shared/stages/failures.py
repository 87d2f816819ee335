"""The one place a permanent failure becomes a reported result, and transient ones a retry.

- :func:`report_failure`: a ``PermanentError`` → one ``rejected``/``failed`` VerifyResult on
  verify-results (with the run, destination and source the error carries from ``log.bind``).
  A failure to report is logged, never raised: reporting must not turn into a retry storm.
- :func:`each`: run one piece of work per item (destinations of a file, run folders of a
  request) so that one failing does not hide the others. Once every item had its turn:
  transient failures are raised together (the event is redelivered; items already done skip
  as unchanged or already reported) after every permanent one was reported; with only
  permanent failures, all but the last are reported and the last is raised, so the stage
  reports it and acknowledges the event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from shared import log
from shared.errors import PermanentError, TransientError
from shared.ids import Stage

logger = log.get_logger(__name__)
T = TypeVar("T")
CONTEXT_FIELDS = ("run_id", "destination", "source", "message_id", "date")


def context_of(exc: BaseException) -> dict[str, Any]:
    """What an error carries about where it happened (``shared.log.bind`` adds it)."""
    carried = getattr(exc, log.ERROR_CONTEXT_ATTR, None)
    return carried if isinstance(carried, dict) else {}


def report_failure(stage: Stage | str, exc: PermanentError, *, message_id: str | None = None) -> None:
    """Publish ``exc`` as a ``rejected``/``failed`` result of ``stage``; never raises."""
    from shared.messages import VerifyResult
    from shared.reporting.results import report

    context = context_of(exc)
    source = context.get("source")
    try:
        result = VerifyResult(
            status=exc.status,
            stage=str(context.get("stage") or stage),
            reason=str(exc),
            message_id=str(context.get("message_id") or message_id or "") or None,
            run_id=context.get("run_id"),
            destination=str(context["destination"]) if context.get("destination") else None,
            source=source,
            date=context.get("date"),
        )
        report(result)
    except Exception as report_exc:  # noqa: BLE001 - see module docstring
        logger.error("could not report failure", error=str(report_exc), original=str(exc))


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
