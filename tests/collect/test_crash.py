"""A collect_copy process killed mid-upload (SIGKILL, nothing cleaned up), then the redelivery:
exactly one complete copy at the destination, no partial file left, the source untouched until then."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from devstack.throttle import ThrottledProxy
from shared import runtime
from shared.collect.copy import copy_file
from tests.collect.conftest import Collect, partner_fields

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import sys
from shared import runtime
from shared.collect.copy import copy_file
from shared.collect.messages import CollectFile
copy_file(runtime.config(), CollectFile.from_json(sys.argv[1]))
"""


def test_killed_copy_then_redelivery_gives_one_complete_copy(collect: Collect, user_folder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = user_folder("dest")
    proxy = ThrottledProxy(collect.sshd.port, bytes_per_s=2_000_000)  # a slow link: the kill lands mid-upload
    try:
        known = f"[127.0.0.1]:{proxy.port} {' '.join(collect.sshd.host_public_key.split()[:2])}\n"
        slow = {**partner_fields(collect.sshd, proxy.port, known), "directory": str(target)}
        raw = collect.raw(
            {"destinations": ["sftp:slow"], "post_action": "delete"}, destinations={"sftp": {"slow": slow}}
        )
        config_file = tmp_path / "offsite.yaml"
        config_file.write_text(yaml.safe_dump(raw))
        data = os.urandom(8_000_000)
        collect.write("big.bin", data)
        config = collect.config(
            {"destinations": ["sftp:slow"], "post_action": "delete"}, destinations={"sftp": {"slow": slow}}
        )
        collect.list(config)
        [message] = collect.published_files()

        env = {**os.environ, "OFFSITE_CONFIG": str(config_file), "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen([sys.executable, "-c", CHILD, message.to_json().decode()], cwd=ROOT, env=env)
        partial = target / collect.folder / "big.bin.partial"
        deadline = time.monotonic() + 120
        while not (partial.exists() and partial.stat().st_size > 1_000_000):
            assert child.poll() is None, "the copy ended before it could be killed"
            assert time.monotonic() < deadline, "no partial upload appeared"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        landed = target / collect.folder / "big.bin"
        assert not landed.exists()  # never visible half-written
        assert (collect.partner_dir / "big.bin").exists()  # no post-action without a verified copy

        runtime.reset()
        assert copy_file(config, message) == "collected"  # Pub/Sub redelivers the message
        assert hashlib.sha1(landed.read_bytes()).hexdigest() == hashlib.sha1(data).hexdigest()
        assert sorted(p.name for p in landed.parent.iterdir()) == ["big.bin"]  # one copy, no partial
        assert not (collect.partner_dir / "big.bin").exists()  # deleted after the verified copy
        assert copy_file(config, message) == "already"
    finally:
        proxy.close()
