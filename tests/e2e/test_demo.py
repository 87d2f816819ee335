"""The README's demo command, end to end: `offsite demo` on a fresh local stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def test_demo_verifies_every_delivery_and_stops_the_stack() -> None:
    state = Path(tempfile.mkdtemp(prefix="offsite-demo-"))  # under /tmp: the SFTP account must enter it
    state.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OFFSITE", "PUBSUB_", "STORAGE_EMULATOR"))}
    proc = subprocess.run(
        [sys.executable, "-m", "offsite.cli", "demo", "--root", str(state), "--timeout", "400"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "\x1b" not in out  # not a terminal: plain progress lines, no live table
    progress, summary = out.rsplit("\n\n", 1)  # the summary follows the progress after one blank line
    # every sample table reached both destinations, and the query export reached SFTP, hashed
    for source in ("sales.orders", "sales.customers", "sales.products", "export:orders_daily"):
        assert source in summary
        assert re.search(rf"  {re.escape(source)}  export: done  files \d+", progress)
    in_sync = [line for line in summary.splitlines() if " in_sync " in line]
    assert len(in_sync) == 7 and all("check: sha1" in line for line in in_sync)
    assert "all deliveries in sync with sha1: 7 of 7" in summary
    # one collect run: the stack's sshd as the partner, its sample files into Box (docs/collect.md)
    assert re.search(r"collect toast r[0-9a-f]+: status=in_sync, 2/2 files, [\d,]+ bytes → box", summary)
    verified = [line for line in progress.splitlines() if re.search(r"  verify → (box|sftp:\S+): in_sync  files", line)]
    assert len(verified) == 7  # each delivery's progress line once it was verified
    # then one table comes back from Box into BigQuery, proven equal to its manifest
    assert re.search(
        r"restore sales\.products of run \S+ from box → \S+: EQUAL \(row count, schema, fingerprint\), \d+ rows", out
    ), out
    # nothing of that stack is left running
    leftovers = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if str(state) in " ".join(p.info["cmdline"] or []):
                leftovers.append(p.info)
        except psutil.Error:
            continue
    assert leftovers == []
