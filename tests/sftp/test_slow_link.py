"""A transfer paused at its deadline on a slow link: what was read ahead must drain soon after,
inside the invocation's time after ``delivery.budget_s`` (540 s against 480 by default)."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from devstack.throttle import ThrottledProxy
from shared.destinations.base import Progress
from shared.destinations.sftp.destination import SftpDestination
from shared.destinations.sftp.stream import DRAIN_S
from shared.secrets import Secret
from tests.sftp.conftest import make_partner
from tests.sftp.sshd_server import Sshd

RATE = 500_000  # bytes/s: the partner's link (16 MiB read ahead would take 34 s to drain)
SIZE = 64 * 1024 * 1024


def test_a_pause_on_a_slow_link_ends_within_the_drain_time(sshd: Sshd, workdir: Path) -> None:
    proxy = ThrottledProxy(sshd.port, RATE)
    try:
        known = sshd.known_hosts.replace(f"]:{sshd.port} ", f"]:{proxy.port} ")
        partner = make_partner(sshd, workdir, port=proxy.port, known_hosts=Secret(known))
        data = os.urandom(SIZE)
        with SftpDestination("slow", partner) as dest:
            deadline = time.monotonic() + 2.0
            out = dest.put_resumable("slow/big.bin", io.BytesIO(data), SIZE, deadline=deadline)
            late = time.monotonic() - deadline
    finally:
        proxy.close()
    assert isinstance(out, Progress), out
    assert late < DRAIN_S + 5, f"the pause ended {late:.1f} s after the deadline"
    partial = workdir / "slow" / "big.bin.partial"
    assert partial.stat().st_size == out.bytes_done  # what the checkpoint says is there, is there
    assert partial.read_bytes() == data[: out.bytes_done]
