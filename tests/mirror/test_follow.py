"""A reconcile followed to its outcome, its fix confirmed by checks (shared/mirror/follow.py),
against the bare stack: requests published on the Pub/Sub emulator and pushed to verify as the
push subscription would, the results read back from the run history in GCS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from shared.errors import PermanentError
from shared.gcp import pubsub
from shared.mirror.follow import CONFIRM_PAUSES_S, follow
from shared.mirror.request import MirrorRequest
from shared.stages.verify import verify
from shared.topology import MIRROR_RECONCILES
from tests.mirror.conftest import MirrorStack


def _pushing(m: MirrorStack, sent: list[MirrorRequest]) -> Callable[[MirrorRequest], str]:
    """Publish on mirror-reconciles, then push the message to verify (its Pub/Sub id kept)."""

    def publish(request: MirrorRequest) -> str:
        message_id = pubsub.publish(MIRROR_RECONCILES, request)
        sent.append(request)
        verify(m.pubsub_event(MIRROR_RECONCILES, request.to_json(), message_id=message_id), m.config)
        return message_id

    return publish


def _broken_copy(m: MirrorStack, name: str) -> MirrorRequest:
    m.finalized(m.put(name, b"one"))
    m.sftp_path(name).unlink()
    return MirrorRequest.model_validate({"bucket": m.bucket, "destination": "sftp:local", "request_id": "t-follow"})


def test_a_fix_never_made_is_checked_after_each_pause_and_the_last_check_stands(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """Its re-delivery is never pushed here: every check finds the copy missing. The follower
    checks once per pause, then answers complete with the last check (not in sync)."""
    m = mirror_factory()
    request = _broken_copy(m, "p/one.txt")
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    sent: list[MirrorRequest] = []
    publish = _pushing(m, sent)
    publish(request)
    slept: list[float] = []
    followed = follow(
        m.config, request, ["sftp:local"], since, wait=600, sleep=slept.append, poll_s=0.01, publish=publish
    )
    assert followed.complete and not followed.in_sync(["sftp:local"])
    checks = sent[1:]
    assert len(checks) == len(CONFIRM_PAUSES_S)
    assert all((str(c.destination), c.fix, c.request_id) == ("sftp:local", False, "t-follow") for c in checks)
    assert [s for s in slept if s in CONFIRM_PAUSES_S] == list(CONFIRM_PAUSES_S)
    fixed, last = followed.fixed["sftp:local"], followed.results["sftp:local"]
    assert (fixed.status, fixed.heal_attempts, fixed.missing) == ("mismatch", 1, ["p/one.txt"])
    assert (last.status, last.heal_attempts, last.missing) == ("mismatch", 0, ["p/one.txt"])


def test_a_check_that_cannot_be_published_ends_the_wait_with_what_the_fix_found(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory()
    request = _broken_copy(m, "q/one.txt")
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    _pushing(m, [])(request)

    def refused(check: MirrorRequest) -> str:
        raise PermanentError("403 publish denied on mirror-reconciles")

    followed = follow(
        m.config, request, ["sftp:local"], since, wait=60, sleep=lambda s: None, poll_s=0.01, publish=refused
    )
    assert followed.refused and not followed.complete
    assert (
        followed.unread == "a check confirming the fix could not be published: 403 publish denied on mirror-reconciles"
    )
    assert followed.results["sftp:local"].status == "mismatch" and "sftp:local" in followed.fixed
