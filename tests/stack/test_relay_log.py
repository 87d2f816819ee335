"""The relay's log is one JSON object per line even when it answers many pushes at once.

Tests and operators read it line by line (``offsite dev logs``, tests/stack/test_gcs_events.py);
the relay answers on one thread per request, so a line written in two pieces could be joined
with another thread's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devstack.ports import free_port

PUSHES = 600


def _post(url: str) -> int:
    request = urllib.request.Request(url, data=b"not json", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_listening(url: str, relay: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert relay.poll() is None, "the relay exited"
        try:
            _post(url)
            return
        except OSError:
            assert time.monotonic() < deadline, "the relay never listened"
            time.sleep(0.05)


def test_concurrent_pushes_log_whole_lines(tmp_path: Path) -> None:
    targets = tmp_path / "targets.json"
    targets.write_text("{}")
    port = free_port()
    log = tmp_path / "relay.log"
    with log.open("wb") as stderr:
        relay = subprocess.Popen(
            [sys.executable, "-m", "devstack.relay", "--port", str(port), "--targets", str(targets)], stderr=stderr
        )
    try:
        url = f"http://127.0.0.1:{port}/to/upload_box"
        _wait_listening(url, relay)
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: _post(url), range(PUSHES)))
        assert set(statuses) == {400}
    finally:
        relay.terminate()
        relay.wait(10)
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]  # a joined line fails here
    assert len(parsed) == PUSHES + 1  # and the probe
    assert {p["note"] for p in parsed} == {"not a Pub/Sub push body"}
