"""``POST /mirror/<bucket>[?wait=SECONDS]``: reconcile a mirrored bucket over HTTP, as its
schedule and ``offsite mirror reconcile`` do on ``mirror-reconciles``; ``GET /mirror[/<bucket>]``:
each mirrored bucket's last reconcile at each destination and its next scheduled one.

A request is checked against the config before it is published: a bucket that is not mirrored
is a 404 naming the mirrored ones; a bad body (``destination``, ``fix``) a 400 naming the field.
``?wait=`` follows the reconcile until every destination asked has reported (``mirror-{bucket}``
results of the reconcile stage carrying the request's ``request_id``, which the trigger chooses
unless the body gives one: a scheduled reconcile reported meanwhile is not taken for this one);
200 with each destination's result, 202 with ``complete: false`` when the wait ran out first.
Once published, no answer invites a retry: a history that cannot be read is named in the 202.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

from shared import log
from shared.config import Config
from shared.config.buckets import BucketMirror
from shared.errors import RejectedInput
from shared.http_trigger.messages import BadRequest, HttpRequest, HttpResponse, error
from shared.http_trigger.params import POLL_S, body_object, days_param, wait_param
from shared.mirror.follow import follow
from shared.mirror.request import MirrorRequest
from shared.mirror.routing import mirrored, reconcile_targets
from shared.mirror.status import status_row

logger = log.get_logger(__name__)

# GCS's bucket name rules (lower case, digits, '-', '_', '.'); checked before it is named in a log
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]\Z")


def bucket_segment(parts: list[str]) -> str:
    """``/mirror/<bucket>``'s bucket, checked as a GCS bucket name."""
    value = parts[1]
    if not _BUCKET.match(value):
        raise BadRequest(f"bucket: {value[:80]!r} in the path is not a GCS bucket name")
    return value


def _mirror_or_404(config: Config, bucket: str) -> BucketMirror | HttpResponse:
    """The bucket's entry, or the 404 naming the mirrored buckets."""
    try:
        return mirrored(config, bucket)
    except RejectedInput as exc:
        return error(404, str(exc))


def start_reconcile(request: HttpRequest, config: Config, bucket: str, sleep: Callable[[float], None]) -> HttpResponse:
    """Publish ``{"bucket": B}`` (``destination``, ``fix`` from the body) on mirror-reconciles (202)."""
    from shared.gcp import pubsub
    from shared.topology import MIRROR_RECONCILES

    mirror = _mirror_or_404(config, bucket)
    if isinstance(mirror, HttpResponse):
        return mirror
    wait = wait_param(request.query)
    asked = MirrorRequest.from_obj(body_object(request.body, MirrorRequest.KIND, ("bucket", bucket)))
    mirror_request = asked if asked.request_id else asked.model_copy(update={"request_id": _new_request_id()})
    _, targets = reconcile_targets(mirror_request, config)  # a destination not the bucket's own: a 400
    published_at = dt.datetime.now(dt.UTC)
    message_id = pubsub.publish(MIRROR_RECONCILES, mirror_request, origin="http-trigger")
    logger.info("mirror reconcile requested", bucket=bucket, message_id=message_id)
    answer: dict[str, Any] = {
        "bucket": bucket,
        "message_id": message_id,
        "request_id": mirror_request.request_id,
        "topic": MIRROR_RECONCILES,
        "request": mirror_request.to_dict(),
        "destinations": [str(t) for t in targets],
        "status_url": f"/mirror/{bucket}",
    }
    if wait is None:
        return HttpResponse(202, answer)
    return _await_reconcile(config, mirror_request, answer, published_at, wait, sleep)


def _new_request_id() -> str:
    """A request id no other reconcile carries (the results of this one answer it)."""
    return f"http-{uuid.uuid4().hex[:20]}"


def _await_reconcile(
    config: Config,
    mirror_request: MirrorRequest,
    answer: dict[str, Any],
    published_at: dt.datetime,
    wait: float,
    sleep: Callable[[float], None],
) -> HttpResponse:
    """200 once every destination asked has the outcome of this reconcile (its ``request_id``),
    a fix confirmed by a check (:mod:`shared.mirror.follow`); else 202 with what is in so far."""
    from shared.gcp import pubsub
    from shared.topology import MIRROR_RECONCILES

    wanted = answer["destinations"]
    followed = follow(
        config,
        mirror_request,
        wanted,
        published_at,
        wait=wait,
        sleep=sleep,
        poll_s=POLL_S,
        publish=lambda check: pubsub.publish(MIRROR_RECONCILES, check, origin="http-trigger"),
    )
    if followed.refused:
        return HttpResponse(
            202, {**answer, "complete": False, "error": f"the reconcile was started; {followed.unread}"}
        )
    body = {
        **answer,
        "complete": followed.complete,
        "results": {d: r.to_dict() for d, r in followed.results.items()},
        "fixed": {d: r.to_dict() for d, r in followed.fixed.items()},
    }
    if not followed.complete:
        return HttpResponse(202, body)
    return HttpResponse(200, {**body, "in_sync": followed.in_sync(wanted)})


def mirror_status(request: HttpRequest, config: Config, bucket: str | None) -> HttpResponse:
    """``GET /mirror``: every mirrored bucket; ``GET /mirror/<bucket>``: that one. Each with its
    destinations' last reconcile in the last ``?days=`` (1–90, default 7) and its next run."""
    mirrors = list(config.buckets)
    if bucket is not None:
        chosen = _mirror_or_404(config, bucket)
        if isinstance(chosen, HttpResponse):
            return chosen
        mirrors = [chosen]
    days = days_param(request.query)
    now = dt.datetime.now(dt.UTC)
    rows = [status_row(config, m, now, days) for m in mirrors]
    body: dict[str, Any] = rows[0] if bucket is not None else {"buckets": rows}
    return HttpResponse(200, {**body, "checked_at": now.isoformat(timespec="seconds")})
