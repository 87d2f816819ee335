"""Slow links and the deadline: every invocation of ``put_resumable`` must end soon after its
deadline, inside the invocation's time after ``delivery.budget_s`` (540 s against 480 by
default), and make progress, or the file is never delivered: what was read ahead must drain
soon after a pause, and the download that hashes a same-size file already there must stop."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from devstack.throttle import ThrottledProxy
from shared.destinations.base import MemoryLedger, Progress, PutResult
from shared.destinations.sftp.connect import MAX_REQUEST_BYTES
from shared.destinations.sftp.destination import SftpDestination
from shared.destinations.sftp.reader import READ_AHEAD
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


class SlowReplies(ThrottledProxy):
    """Only what the server sends is slow (a partner whose downloads crawl): requests pass at
    loopback speed."""

    def connected(self, client: socket.socket, server: socket.socket) -> None:
        threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
        threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()


@pytest.mark.parametrize("sha1_known", [False, True], ids=["after-writing", "before-writing"])
def test_hashing_a_same_size_file_already_there_stops_at_the_deadline(
    sshd: Sshd, workdir: Path, sha1_known: bool
) -> None:
    """The partner holds another file of the same size and nothing proves what it is (no server
    hash, no ledger entry): its download is bounded by the deadline, and past it the file is
    replaced unproven, so the delivery completes (24 s to read it back, 6 s of budget)."""
    size, rate = 24 * 1024 * 1024, 1_000_000
    # Stopping drains the READs in flight (the session is used on): at most 4 MiB here, ~4.2 s at
    # this rate; the same 5 s of slack as a pause has above. Unbounded, it would end 18 s late.
    drain_s = READ_AHEAD * MAX_REQUEST_BYTES / rate
    old, new = os.urandom(size), os.urandom(size)
    (workdir / "data.bin").write_bytes(old)
    proxy = SlowReplies(sshd.port, rate)
    try:
        known = sshd.known_hosts.replace(f"]:{sshd.port} ", f"]:{proxy.port} ")
        partner = make_partner(sshd, workdir, port=proxy.port, known_hosts=Secret(known))
        sha1 = hashlib.sha1(new).hexdigest() if sha1_known else None
        with SftpDestination("slow", partner, ledger=MemoryLedger()) as dest:
            resume, invocations = None, 0
            while True:
                invocations += 1
                deadline = time.monotonic() + 6.0
                out = dest.put_resumable("data.bin", io.BytesIO(new), size, sha1=sha1, resume=resume, deadline=deadline)
                late = time.monotonic() - deadline
                assert late < drain_s + 5, f"invocation {invocations} ended {late:.1f} s after its deadline"
                if isinstance(out, PutResult):
                    break
                resume = out.state
                assert invocations < 5
    finally:
        proxy.close()
    assert out.status == "new_version"
    assert (workdir / "data.bin").read_bytes() == new
