"""One reconcile followed from outside to each destination's outcome, by its request id
(``POST /mirror/<bucket>?wait=``, ``offsite mirror reconcile --wait``).

A check-only reconcile's outcome is its results. A fixing reconcile reports what it found and
then the delivery functions make the copies it asked for, in invocations of their own. Where it
fixed something (its result: ``mismatch`` with ``heal_attempts`` 1), the follower confirms the
fix: after a pause it publishes a check-only reconcile of that destination with the same request
id, and again after longer pauses (:data:`CONFIRM_PAUSES_S`) while the copies are still being
made, until one reports ``in_sync``, the pauses are spent (the last check stands) or the wait
runs out (not complete). The newest result per destination is the outcome; the fixing one is
kept beside it. A confirming check is known by its message id, so no clock is compared.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shared.config import Config
from shared.ids import DestinationId, Status
from shared.messages import VerifyResult
from shared.mirror.request import MirrorRequest
from shared.mirror.status import latest_reconciles
from shared.reporting.polling import Polled, poll_history

CONFIRM_PAUSES_S = (2.0, 5.0, 10.0, 20.0, 40.0, 60.0)
"""Before each confirming check: the copies of a small fix are made in seconds; one of many
objects or large ones takes longer, and each check lists the whole bucket, so checks grow apart."""


@dataclass(frozen=True)
class Followed:
    """Each destination's newest result of the request (``results``), the fixing results that
    were confirmed or are being confirmed (``fixed``), whether every destination's outcome is in,
    and what could not be done (``unread``; ``refused``: the history refused to be read, or a
    check could not be published, and the wait ended there)."""

    results: dict[str, VerifyResult]
    complete: bool
    fixed: dict[str, VerifyResult] = field(default_factory=dict)
    unread: str | None = None
    refused: bool = False

    def in_sync(self, destinations: Sequence[str]) -> bool:
        return self.complete and all(self.results[d].status == Status.IN_SYNC for d in destinations)


def _first_results(
    config: Config,
    bucket: str,
    request_id: str,
    destinations: Sequence[str],
    since: dt.datetime,
    *,
    wait: float,
    sleep: Callable[[float], None],
    poll_s: float,
) -> Polled[dict[str, VerifyResult]]:
    """The results of the reconcile asked with ``request_id`` (published after ``since``), read
    from the run history until each of ``destinations`` has one or ``wait`` seconds ran out."""
    return poll_history(
        lambda: latest_reconciles(config, bucket, since, request_id=request_id),
        lambda found: all(d in found for d in destinations),
        {},
        wait=wait,
        sleep=sleep,
        what="reconcile results",
        poll_s=poll_s,
    )


def follow(
    config: Config,
    request: MirrorRequest,
    destinations: Sequence[str],
    since: dt.datetime,
    *,
    wait: float,
    sleep: Callable[[float], None],
    poll_s: float,
    publish: Callable[[MirrorRequest], str],
) -> Followed:
    """``request`` (published after ``since``, with a request id) followed until each of
    ``destinations`` has its outcome, its fixes confirmed (module docstring), within ``wait``
    seconds. ``publish`` sends a confirming check on mirror-reconciles and returns its message id."""
    assert request.request_id is not None, "only a request with a request id can be followed"
    deadline = time.monotonic() + wait
    first = _first_results(
        config, request.bucket, request.request_id, destinations, since, wait=wait, sleep=sleep, poll_s=poll_s
    )
    found = first.value
    if first.refused or any(d not in found for d in destinations):
        return Followed(found, False, unread=first.unread, refused=first.refused)
    fixed = {d: found[d] for d in destinations if request.fix and _fixed(found[d])}
    pending = sorted(fixed)
    for pause in CONFIRM_PAUSES_S:
        if not pending:
            break
        if deadline - time.monotonic() <= pause:
            return Followed(found, False, fixed)
        sleep(pause)
        try:
            asked = {d: publish(_check_only(request, d)) for d in pending}
        except Exception as exc:  # noqa: BLE001 - the reconcile ran: answer what it found, never retry it
            return Followed(found, False, fixed, f"a check confirming the fix could not be published: {exc}", True)
        polled = _answers(config, request, since, asked, found, deadline, sleep, poll_s)
        found = {**found, **polled.value}
        if polled.refused or any(found[d].message_id != asked[d] for d in pending):
            return Followed(found, False, fixed, polled.unread, polled.refused)
        pending = [d for d in pending if found[d].status != Status.IN_SYNC]
    return Followed(found, True, fixed)


def _answers(
    config: Config,
    request: MirrorRequest,
    since: dt.datetime,
    asked: dict[str, str],
    found: dict[str, VerifyResult],
    deadline: float,
    sleep: Callable[[float], None],
    poll_s: float,
) -> Polled[dict[str, VerifyResult]]:
    """The newest results of the request until each destination in ``asked`` has the answer to
    the check published for it (the message id ``asked[destination]``), or ``deadline``."""
    return poll_history(
        lambda: latest_reconciles(config, request.bucket, since, request_id=request.request_id),
        lambda now: all(d in now and now[d].message_id == message_id for d, message_id in asked.items()),
        found,
        wait=max(0.0, deadline - time.monotonic()),
        sleep=sleep,
        what="reconcile results",
        poll_s=poll_s,
    )


def _fixed(result: VerifyResult) -> bool:
    """A fixing reconcile's result where it re-delivered or deleted something."""
    return result.status == Status.MISMATCH and result.heal_attempts > 0


def _check_only(request: MirrorRequest, destination: str) -> MirrorRequest:
    return request.model_copy(update={"destination": DestinationId.parse(destination), "fix": False})
