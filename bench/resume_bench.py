"""A transfer longer than its invocation budget, over a slow link: does it arrive whole, how many
invocations does it take, and how much is sent twice?

The local stack's SFTP server and Box API server sit behind a throttled proxy
(devstack/throttle.py: uploads at ``--rate`` bytes/s). One object in the GCS emulator is
delivered to each with the delivery operation's resumable path: each "invocation" calls
``put_resumable`` with a deadline ``--budget`` seconds away and, when it returns Progress,
the next one continues from that state, as the checkpoint + delivery-continuations message do
in the functions. Printed per destination: invocations, bytes sent upstream (payload, and the
link's count with protocol overhead), what was sent twice, the throughput against the link.

The issue's figure is 2 GB at 2 MB/s with the cloud's 480 s budget (``--full``: ~17 min per
destination; fake-gcs-server keeps objects in memory and reached 9.3 GB RSS receiving the 2 GB
object, so run it only on a machine with that to spare); the default (150 MB, 16 s) is scaled
down to run in about three minutes with the same shape (≥ 3 invocations). Not a test: nothing here asserts; it prints what it saw, with the issue's
bar per destination (whole, ≥ 3 invocations, at most one chunk — SFTP's 1 MiB read, Box's part —
sent twice), and exits 1 when a destination misses it.

    .venv/bin/python bench/resume_bench.py [--full] [--size MB] [--rate MBps] [--budget S]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR.parent))

MB = 1_000_000
CHUNK_BYTES = 1024 * 1024  # shared.destinations.sftp.stream.CHUNK_BYTES (checked in main)
LINK_OVERHEAD = 0.005  # protocol bytes on the link per payload byte (SSH packets ~0.2 %, HTTP less)


def _deliver(destination: Any, info: Any, budget_s: float, path: str) -> dict[str, Any]:
    from shared.destinations.base import MemoryLedger, Progress
    from shared.gcp.reader import ObjectReader

    state, sent, done, invocations, started, longest = None, 0, 0, 0, time.monotonic(), 0.0
    chunk = CHUNK_BYTES  # SFTP: one read from the source; Box: the session's part size (below)
    ledger = MemoryLedger()
    while True:
        invocations += 1
        source = ObjectReader(info, prefetch=4)
        began = time.monotonic()
        try:
            deadline = began + budget_s
            outcome = destination.put_resumable(path, source, info.size, ledger=ledger, resume=state, deadline=deadline)
        finally:
            source.close()
        longest = max(longest, time.monotonic() - began)
        if isinstance(outcome, Progress):
            sent += outcome.bytes_sent
            state, done = outcome.state, outcome.bytes_done
            chunk = int(state.get("session", {}).get("part_size", chunk))
            print(
                f"  invocation {invocations}: {outcome.bytes_done / MB:8.1f} MB stored, {outcome.bytes_sent / MB:.1f} MB sent"
            )
            continue
        sent += info.size - done  # the last invocation sends what was not stored yet
        print(f"  invocation {invocations}: complete, sha1 {outcome.sha1[:12]}…")
        seconds = time.monotonic() - started
        return {
            "invocations": invocations,
            "sent": sent,
            "seconds": seconds,
            "sha1": outcome.sha1,
            "longest": longest,
            "chunk": chunk,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="2 GB at 2 MB/s with the 480 s budget (~35 min)")
    parser.add_argument("--size", type=float, default=150.0, help="object size in MB (default 150)")
    parser.add_argument("--rate", type=float, default=2.0, help="link rate in MB/s (default 2)")
    parser.add_argument("--budget", type=float, default=16.0, help="seconds per invocation (default 16)")
    args = parser.parse_args(argv)
    size_mb, rate, budget = (2000.0, 2.0, 480.0) if args.full else (args.size, args.rate, args.budget)

    from devstack.stack import start_stack, stop_stack
    from devstack.throttle import ThrottledProxy
    from shared.config import BoxAuth, BoxDestination, SftpPartner
    from shared.destinations.box.destination import BoxDestination as Box
    from shared.destinations.sftp.destination import SftpDestination
    from shared.destinations.sftp.stream import CHUNK_BYTES as SFTP_CHUNK
    from shared.gcp import gcs
    from shared.secrets import Secret

    assert SFTP_CHUNK == CHUNK_BYTES, "bench/resume_bench.py: update CHUNK_BYTES"
    root = Path(tempfile.mkdtemp(prefix="offsite-resume-bench-"))
    info = start_stack(root, functions=False, without=("bigquery", "webhook"))
    rows = []
    try:
        os.environ.update(info.env)
        data = os.urandom(int(size_mb * MB))
        obj = gcs.write(info.bucket, "bench/resume.bin", data)
        want = hashlib.sha1(data).hexdigest()
        del data
        sftp_proxy = ThrottledProxy(info.sftp.port, rate * MB)
        known = info.sftp.known_hosts_path.read_text().replace(f"]:{info.sftp.port} ", f"]:{sftp_proxy.port} ")
        partner = SftpPartner(
            host="127.0.0.1",
            port=sftp_proxy.port,
            username=info.sftp.username,
            private_key=Secret(f"file:{info.sftp.key_path}"),
            known_hosts=Secret(known),
            directory=str(info.sftp.directory),
        )
        box_port = int(info.box.base_url.rsplit(":", 1)[1].split("/")[0])
        box_proxy = ThrottledProxy(box_port, rate * MB)
        box_url = info.box.base_url.replace(f":{box_port}", f":{box_proxy.port}")
        settings = BoxDestination(
            root_folder_id="0",
            auth=BoxAuth(method="developer_token", developer_token=Secret(info.box.developer_token)),
            base_url=box_url,
            upload_url=box_url + "/api",
            oauth_url=box_url + "/oauth2",
        )
        for name, destination, proxy in (
            ("sftp", SftpDestination("bench", partner), sftp_proxy),
            ("box", Box(settings), box_proxy),
        ):
            print(f"{name}: {size_mb:.0f} MB at {rate} MB/s, {budget:.0f} s per invocation")
            got = _deliver(destination, obj, budget, f"resume-bench/{name}-{int(time.time())}.bin")
            resent = max(0, got["sent"] - obj.size)
            rows.append((name, got, proxy.sent, resent, got["sha1"] == want))
            destination.close()
    finally:
        stop_stack(root)
    return 0 if _report(rows, obj.size, budget, rate) else 1


def _report(rows: list[tuple[str, dict[str, Any], int, int, bool]], size: int, budget: float, rate: float) -> bool:
    """Print each destination's line; True when every one met the bar."""
    print()
    print(f"budget {budget:.0f} s per invocation; the longest ran past it by draining what was in flight")
    # The bar: whole, across >= 3 invocations, at most one chunk sent twice.
    head = f"{'dest':6} {'invocations':>11} {'longest s':>9} {'sent MB':>9} {'resent MB':>9} {'chunk MB':>8}"
    print(head + f" {'link MB':>8} {'MB/s':>6} {'link use':>8}  whole  >=3 inv  <=1 chunk twice")
    met = True
    for name, got, link_bytes, resent, whole in rows:
        rate_got = size / MB / got["seconds"]
        # Sent twice, as offsite counts it (parts/chunks it started again) and as the link saw it
        # (a part retried after a dropped connection is not in offsite's count).
        twice = max(resent, link_bytes - size * (1 + LINK_OVERHEAD))
        spread, once = got["invocations"] >= 3, twice <= got["chunk"]
        met = met and whole and spread and once
        print(
            f"{name:6} {got['invocations']:>11} {got['longest']:>9.1f} {got['sent'] / MB:>9.1f} {resent / MB:>9.1f}"
            f" {got['chunk'] / MB:>8.1f} {link_bytes / MB:>8.1f} {rate_got:>6.2f} {rate_got / rate:>7.0%}"
            f"  {'yes' if whole else 'NO':5}  {'yes' if spread else 'no':6}  {'yes' if once else 'NO'}"
        )
    return met


if __name__ == "__main__":
    raise SystemExit(main())
