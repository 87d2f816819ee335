"""A private full stack for fault tests, and what they share: writing a run as export_table
does (``_run.json``, data files, ``_manifest.json`` last), and reading what came of it (the run
history in the state bucket, the files at each destination)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.state import StackInfo
from shared.config import Config, load_config
from shared.gcp import gcs
from shared.layout import RunFolder, default_file_name
from shared.messages import Source, VerifyResult
from shared.reporting.history import read as read_history
from tests.run_folders import run_manifest, start_run

DAY = dt.date(2025, 1, 8)
WAIT_S = 240.0


@dataclass
class FaultRun:
    folder: RunFolder
    files: dict[str, bytes]
    destinations: tuple[str, ...]
    generations: dict[str, int] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.folder.run_id

    def sha1(self, name: str) -> str:
        return hashlib.sha1(self.files[name]).hexdigest()


class FaultKit:
    def __init__(self, info: StackInfo) -> None:
        self.info = info
        self.config: Config = load_config(info.config_path, environ={})

    def new_run(self, files: dict[str, int], destinations: tuple[str, ...], *, table: str = "orders") -> FaultRun:
        """A run folder with random files of the given sizes; the manifest is written by :meth:`finish`."""
        source = Source(mode="table", project=self.config.project, dataset="sales", table=table)
        folder = start_run(
            self.config.bucket,
            self.config.export_prefix,
            source,
            DAY,
            "f" + uuid.uuid4().hex[:12],
            destinations,
            default_file_name(table, "PARQUET"),
        )
        names = {f"{table}_20250108-{i:012d}.parquet": size for i, size in enumerate(files.values())}
        return FaultRun(folder, {n: os.urandom(s) for n, s in names.items()}, destinations)

    def upload(self, run: FaultRun, name: str) -> None:
        """Write one data file (its finalize event starts the uploads)."""
        info = gcs.write(self.config.bucket, run.folder.prefix + name, run.files[name])
        run.generations[name] = info.generation

    def finish(self, run: FaultRun) -> None:
        """The manifest, last, as export_table writes it."""
        manifest = run_manifest(self.config.bucket, run.folder, run.files, run.generations, run.destinations)
        gcs.write(self.config.bucket, run.folder.manifest_name, manifest.to_json(), "application/json")

    def results(self, run: FaultRun) -> list[VerifyResult]:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        return read_history(self.config.state_bucket_name, since, run_ids=[run.run_id])

    def final(self, run: FaultRun, destination: str) -> list[VerifyResult]:
        return [r for r in self.results(run) if r.destination == destination and r.status != "incomplete"]

    def dead_letters(self, run: FaultRun) -> list[dict[str, Any]]:
        """Messages about ``run`` waiting in any dead-letter queue of the stack (left there)."""
        admin = self.info.pubsub_admin()
        queues = sorted(set(self.info.dead_letter_subscriptions.values()))
        return [m for queue in queues for m in admin.pull(queue, 100, ack=False) if run.run_id in str(m)]

    def sftp_dir(self, run: FaultRun) -> Path:
        return self.info.sftp.directory / "sales" / (run.folder.source.table or "") / "20250108" / run.run_id
