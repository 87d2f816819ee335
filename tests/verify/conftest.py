"""Fixtures for verify tests that run the verify stage in this process against the local stack.

``vstack`` (function): the bare stack (real Pub/Sub emulator, fake-gcs-server, SFTP, Box API,
webhook sink; no function processes) with a config of this test's own: a unique
``export_prefix`` (so a sweep sees only this test's runs), the stack's webhook sink for
alerts, and ``verify`` settings from the test. Gives helpers that write runs to GCS, deliver
files like the upload functions do, build real-shaped CloudEvents, and read what verify
published (a pull subscription on verify-results made for this test).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.state import StackInfo
from shared import runtime
from shared.delivery.manifest_copy import missing_at, seal
from shared.destinations import factory
from shared.errors import ConfigError, RejectedInput
from shared.gcp import clients, gcs
from shared.ids import Stage
from shared.layout import RunFolder, default_file_name, remote_folder, remote_manifest_name
from shared.manifest import Manifest
from shared.messages import DeliveryReceipt, Source, VerifyResult
from shared.stages import runner
from shared.stages.deliver import handler_for
from shared.stages.verify import verify
from shared.topology import DELIVERIES, VERIFY_REQUESTS, VERIFY_RESULTS
from tests import cloudevents
from tests.run_folders import run_manifest, start_run

DAY = dt.date(2025, 1, 8)


# Three small Parquet-named files, the run most verify tests deliver; SECOND is the one they damage.
THREE_FILES = {
    "orders_20250108-000000000000.parquet": b"PAR1" + b"a" * 3000,
    "orders_20250108-000000000001.parquet": b"PAR1" + b"b" * 2000,
    "orders_20250108-000000000002.parquet": b"PAR1" + b"c" * 1000,
}
SECOND = "orders_20250108-000000000001.parquet"

# Two files, the run the sweep tests leave undelivered or half-delivered.
SWEEP_FILES = {
    "orders_20250108-000000000000.parquet": b"PAR1" + b"x" * 500,
    "orders_20250108-000000000001.parquet": b"PAR1" + b"y" * 400,
}


def later(hours: float) -> dt.datetime:
    """``hours`` from now (UTC): the sweep's clock moved forward."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)


@dataclass
class Run:
    folder: RunFolder
    files: dict[str, bytes]
    destinations: tuple[str, ...]
    manifest: Manifest | None = None
    generations: dict[str, int] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.folder.run_id


class VerifyStack:
    """One test's view of the stack (see the module docstring)."""

    def __init__(self, info: StackInfo, config_path: Path, prefix: str) -> None:
        self.info = info
        self.config_path = config_path
        self.export_prefix = prefix
        self.bucket = info.bucket
        self.state_bucket = info.state_bucket  # markers, history, alerts: never in the exports bucket
        self.admin = info.pubsub_admin()
        self.results_sub = f"vresults-{uuid.uuid4().hex[:12]}"
        self.admin.create_subscription(self.results_sub, VERIFY_RESULTS)
        self.receipts_sub = f"vreceipts-{uuid.uuid4().hex[:12]}"
        self.admin.create_subscription(self.receipts_sub, DELIVERIES)
        self._seen: list[VerifyResult] = []

    @property
    def config(self) -> Any:
        return runtime.config()

    # ---- runs in GCS ---------------------------------------------------------------------

    def new_run(
        self,
        files: dict[str, bytes],
        destinations: tuple[str, ...] = ("memory",),
        *,
        manifest: bool = True,
        table: str = "orders",
    ) -> Run:
        run_id = "r" + uuid.uuid4().hex[:12]
        source = Source(mode="table", project=self.info.project, dataset="sales", table=table)
        template = default_file_name(table, "PARQUET")
        folder = start_run(self.bucket, self.export_prefix, source, DAY, run_id, destinations, template)
        run = Run(folder, dict(files), destinations)
        for name, data in files.items():
            info = gcs.write(self.bucket, folder.prefix + name, data)
            run.generations[name] = info.generation
        if manifest:
            self.write_manifest(run)
        return run

    def write_manifest(self, run: Run, raw: bytes | None = None) -> None:
        run.manifest = run_manifest(self.bucket, run.folder, run.files, run.generations, run.destinations)
        gcs.write(
            self.bucket,
            run.folder.manifest_name,
            raw if raw is not None else run.manifest.to_json(),
            "application/json",
        )
        if raw is None:  # the manifest's finalize event: destinations holding every file get it
            for destination in run.destinations:
                try:
                    with factory.opened(destination, self.config) as dest:
                        self.deliver_manifest_if_ready(run, dest)
                except ConfigError:
                    continue  # a destination the config does not know (the tests of failures)

    def deliver_manifest_if_ready(self, run: Run, dest: Any) -> bool:
        """What an uploader does after each file (shared.delivery.manifest_copy): once every data
        file is at ``dest``, put the delivered manifest (with SHA-1s) there. True when it did."""
        raw = gcs.read_bytes(self.bucket, run.folder.manifest_name)
        try:
            Manifest.from_json(raw or b"")
        except RejectedInput:
            return False  # none written, or malformed: the uploader sends nothing
        assert run.manifest is not None and raw is not None
        remote = remote_folder(dest.abilities.layout, run.folder, run.manifest.file_name)
        if missing_at(run.manifest, dest, remote.path):
            return False
        body = gcs.read_bytes(self.bucket, seal(self.bucket, run.folder, raw).name)
        assert body is not None
        dest.put(f"{remote.path}/{remote_manifest_name(remote, run.run_id)}", io.BytesIO(body), len(body))
        return True

    def remote_path(self, run: Run, name: str, destination: str = "memory") -> str:
        with factory.opened(destination, self.config) as dest:
            layout = dest.abilities.layout
        folder = remote_folder(layout, run.folder, default_file_name(run.folder.source.table or "t", "PARQUET"))
        return f"{folder.path}/{name}"

    # ---- the upload functions' part ------------------------------------------------------

    def deliver(self, run: Run, name: str, destination: str = "memory", data: bytes | None = None) -> DeliveryReceipt:
        """Put the file at the destination as an uploader would, and return its receipt."""
        body = run.files[name] if data is None else data
        live = gcs.stat(self.bucket, run.folder.prefix + name)
        assert live is not None
        path = self.remote_path(run, name, destination)
        with factory.opened(destination, self.config) as dest:
            put = dest.put(path, io.BytesIO(body), len(body))
            self.deliver_manifest_if_ready(run, dest)
        return DeliveryReceipt(
            run_id=run.run_id,
            bucket=self.bucket,
            object=run.folder.prefix + name,
            generation=live.generation,
            destination=destination,
            remote_path=path,
            size=put.size,
            sha1=hashlib.sha1(run.files[name]).hexdigest(),
            status=put.status,
        )

    def deliver_all(self, run: Run, destination: str = "memory") -> list[DeliveryReceipt]:
        return [self.deliver(run, name, destination) for name in sorted(run.files)]

    def upload(self, run: Run, name: str) -> None:
        """Run the real upload functions in this process, each on an OBJECT_FINALIZE event of the
        object's live generation; they publish receipts on deliveries.

        (Each gets its own event because fake-gcs-server, unlike GCS, gives an object a new
        generation when its metadata is patched — which an upload function does after delivering.)
        """
        for function in (Stage.UPLOAD_BOX, Stage.TRANSFER_SFTP):
            runner.run(function, self.storage_event(run.folder.prefix + name), handler_for(function))

    def pump_receipts(self) -> int:
        """Feed every receipt the upload functions published to verify (as the push subscription would)."""
        fed = 0
        for _ in range(3):
            while batch := self.admin.pull(self.receipts_sub, 100):
                for message in batch:
                    self.receipt(DeliveryReceipt.from_json(message["data_bytes"]))
                    fed += 1
        return fed

    # ---- events --------------------------------------------------------------------------

    def pubsub_event(self, topic: str, data: bytes | str, attributes: dict[str, str] | None = None) -> dict[str, Any]:
        return cloudevents.pubsub_event(self.info.project, topic, data, attributes, subscriber="verify")

    def storage_event(self, name: str) -> dict[str, Any]:
        info = gcs.stat(self.bucket, name)
        assert info is not None
        return cloudevents.storage_event(info)

    def run_verify(self, event: dict[str, Any]) -> None:
        """What functions/verify/main.py does with an event."""
        runner.run(Stage.VERIFY, event, verify)

    def receipt(self, receipt: DeliveryReceipt) -> None:
        self.run_verify(self.pubsub_event(DELIVERIES, receipt.to_json()))

    def request(self, body: dict[str, Any] | str) -> None:
        self.run_verify(self.pubsub_event(VERIFY_REQUESTS, body if isinstance(body, str) else json.dumps(body)))

    def manifest_finalized(self, run: Run) -> None:
        self.run_verify(self.storage_event(run.folder.manifest_name))

    # ---- what verify published -----------------------------------------------------------

    def results(self) -> list[VerifyResult]:
        """Every result published since the test started (all publishes are done when verify returns)."""
        for _ in range(3):  # the emulator may answer a pull before all messages are visible
            while batch := self.admin.pull(self.results_sub, 100):
                self._seen.extend(VerifyResult.from_json(m["data_bytes"]) for m in batch)
        return list(self._seen)

    def results_for(self, run: Run, destination: str | None = None) -> list[VerifyResult]:
        return [
            r
            for r in self.results()
            if r.run_id == run.run_id and (destination is None or r.destination == destination)
        ]

    def alerts(self) -> list[dict[str, Any]]:
        from devstack.webhook_sink import read_messages

        return read_messages(self.info.alerts_file)


@pytest.fixture
def vstack_factory(
    bare_stack_env: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., VerifyStack]]:
    """``vstack_factory(**verify_settings)`` → a VerifyStack with those ``verify:`` settings."""

    def make(**verify_settings: Any) -> VerifyStack:
        raw = yaml.safe_load(bare_stack_env.config_path.read_text())
        prefix = "exports-" + uuid.uuid4().hex[:10]
        raw["export_prefix"] = prefix
        raw["verify"] = {**raw.get("verify", {}), **verify_settings}
        raw["alerts"] = {**raw.get("alerts", {}), "min_interval_s": 60}
        path = tmp_path / f"config-{prefix}.yaml"
        path.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("OFFSITE_CONFIG", str(path))
        runtime.reset()
        return VerifyStack(bare_stack_env, path, prefix)

    yield make
    runtime.reset()
    clients.reset()


@pytest.fixture
def vstack(vstack_factory: Callable[..., VerifyStack]) -> VerifyStack:
    return vstack_factory()
