"""Sample partner files for the local stack's collect job (``toast``): the stack's sshd serves
them from ``<sftp data>/partner-toast/outbox`` (devstack/localconfig.py), as a partner's export
server would. ``offsite dev seed`` and the demo put them there."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import random
from pathlib import Path

from devstack.localconfig import COLLECT_OUTBOX
from devstack.state import StackInfo

SAMPLE_DAY = dt.date(2025, 1, 8)
AGE_S = 3600  # older than any min_age_minutes a sample job would set


def sample_files(day: dt.date = SAMPLE_DAY) -> dict[str, bytes]:
    """A partner's daily export: sales and labor CSVs (fixed seed: identical every time)."""
    rng = random.Random(day.toordinal())
    files = {}
    for name, header in (("OrderDetails", ("order_id", "item", "amount")), ("TimeEntries", ("employee", "hours"))):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        for i in range(500):
            writer.writerow([i, f"item-{rng.randrange(40)}", f"{rng.uniform(1, 90):.2f}"][: len(header)])
        files[f"{name}_{day:%Y%m%d}.csv"] = out.getvalue().encode()
    return files


def seed_partner_files(info: StackInfo, day: dt.date = SAMPLE_DAY) -> list[Path]:
    """Write the sample files into the partner outbox (owned by the SFTP account, so the job's
    post-action can move them); returns their paths."""
    outbox = info.sftp.directory / COLLECT_OUTBOX
    owner = info.sftp.directory.stat()
    written = []
    for folder in (outbox.parent, outbox):
        folder.mkdir(exist_ok=True)
        os.chown(folder, owner.st_uid, owner.st_gid)
    for name, data in sample_files(day).items():
        path = outbox / name
        path.write_bytes(data)
        os.chown(path, owner.st_uid, owner.st_gid)
        stamp = dt.datetime.now(dt.UTC).timestamp() - AGE_S
        os.utime(path, (stamp, stamp))
        written.append(path)
    return written
