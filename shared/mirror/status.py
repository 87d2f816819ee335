"""Each mirrored bucket's last reconcile at each destination, read from the run history, and its
next scheduled one: what ``offsite mirror status`` prints and the HTTP trigger's ``GET /mirror``
answers; the results :mod:`shared.mirror.follow` reads to follow one reconcile."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from shared.config import Config
from shared.config.buckets import BucketMirror
from shared.ids import Stage
from shared.messages import VerifyResult
from shared.mirror.routing import mirror_destinations, mirror_run_id

# A reconcile reports as mirror:reconcile; one that failed before it compared (the bucket not
# listable) or was dead-lettered is reported by verify's runner as verify. Re-deliveries' results
# (upload_box, transfer_sftp) carry the same run id but are not the reconcile's outcome.
RECONCILE_STAGES = frozenset({Stage.MIRROR_RECONCILE, Stage.VERIFY})


def latest_reconciles(
    config: Config, bucket: str, since: dt.datetime, *, request_id: str | None = None
) -> dict[str, VerifyResult]:
    """Each destination's newest reconcile result of ``bucket`` reported since ``since`` (with
    ``request_id``: of the reconcile asked with that id only, not a scheduled one meanwhile)."""
    from shared.reporting.history import read

    results = read(config.state_bucket_name, since, run_ids=[mirror_run_id(bucket)])
    return _newest_per_destination(
        r for r in results if r.stage in RECONCILE_STAGES and (request_id is None or r.request_id == request_id)
    )


def _newest_per_destination(results: Iterable[VerifyResult]) -> dict[str, VerifyResult]:
    newest: dict[str, VerifyResult] = {}
    for result in results:  # oldest first: the last one stands
        if result.destination is not None:
            newest[str(result.destination)] = result
    return newest


def status_row(config: Config, mirror: BucketMirror, now: dt.datetime, days: int) -> dict[str, Any]:
    """The bucket's destinations, each with its last reconcile in the last ``days`` (None: none),
    and the next scheduled reconcile (None: on demand only)."""
    from shared.schedule import next_fire

    last = latest_reconciles(config, mirror.name, now - dt.timedelta(days=days))
    upcoming = next_fire(mirror.schedule, mirror.time_zone, now) if mirror.schedule else None
    return {
        "bucket": mirror.name,
        "delete": mirror.delete,
        "destinations": {str(d): _last(last.get(str(d))) for d in mirror_destinations(mirror, config)},
        "next_run": upcoming.isoformat() if upcoming else None,
    }


def _last(result: VerifyResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    # request_id: who asked (POST /mirror's http-…, offsite mirror reconcile's cli-…; None: the schedule)
    return {
        "status": str(result.status),
        "reason": result.reason,
        "finished_at": result.finished_at,
        "request_id": result.request_id,
    }
