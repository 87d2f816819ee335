"""Fixtures for retention tests: the verify test stack (tests/verify/conftest.py) with a config
of this test's own — a unique dataset (so its folders at the stack's Box and SFTP server are
this test's alone) with a ``retention`` policy — and runs of any day, delivered and verified
through the real verify stage.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.state import StackInfo
from shared import runtime
from shared.destinations import factory
from shared.gcp import clients, gcs
from shared.layout import default_file_name
from shared.messages import DeliveryReceipt, Source
from tests.run_folders import start_run
from tests.verify.conftest import Run, VerifyStack


class RetentionStack(VerifyStack):
    """A VerifyStack whose config has one dataset, ``self.dataset``, with a retention policy."""

    def __init__(self, info: StackInfo, config_path: Path, prefix: str, dataset: str) -> None:
        super().__init__(info, config_path, prefix)
        self.dataset = dataset
        self.export = "q_" + dataset[4:]
        self.receipts: dict[tuple[str, str], list[DeliveryReceipt]] = {}

    def run_of(
        self, day: dt.date, destination: str, *, table: str = "orders", verify: bool = True, query: bool = False
    ) -> Run:
        """A run of ``table`` (or, with ``query``, of the query export ``self.export``) for ``day``:
        exported, delivered to ``destination`` and (``verify``) verified there through the verify
        stage, which publishes in_sync."""
        run_id = "r" + uuid.uuid4().hex[:12]
        if query:
            source = Source(mode="query", project=self.info.project, export=self.export)
            table = "t"  # the file names tests/run_folders.run_manifest gives query runs
        else:
            source = Source(mode="table", project=self.info.project, dataset=self.dataset, table=table)
        stamp = day.strftime("%Y%m%d")
        files = {f"{table}_{stamp}-00000000000{i}.parquet": f"PAR1 {run_id} {i}".encode() * 50 for i in range(2)}
        folder = start_run(
            self.bucket, self.export_prefix, source, day, run_id, (destination,), default_file_name(table, "PARQUET")
        )
        run = Run(folder, files, (destination,))
        for name, data in files.items():
            run.generations[name] = gcs.write(self.bucket, folder.prefix + name, data).generation
        self.write_manifest(run)
        self.receipts[(run.run_id, destination)] = self.deliver_all(run, destination)
        if verify:
            self.verify_receipts(run, destination)
        return run

    def verify_receipts(self, run: Run, destination: str) -> None:
        """Feed the run's delivery receipts to the verify stage (its automatic verification)."""
        for receipt in self.receipts[(run.run_id, destination)]:
            self.receipt(receipt)
        assert [r.status for r in self.results_for(run, destination)] == ["in_sync"]

    def remote_files(self, destination: str) -> list[str]:
        """Every file under this test's dataset at ``destination``."""
        with factory.opened(destination, self.config) as dest:
            base = "GCP/bigquery" if dest.abilities.layout == "gcp_tree" else ""
            prefix = f"{base}/{self.dataset}".strip("/")
            return [f.path[len(prefix) + 1 :] for f in dest.list(prefix)]

    def remote_days(self, destination: str) -> set[str]:
        """``YYYYMMDD`` of every day folder of this test's query export at ``destination``."""
        with factory.opened(destination, self.config) as dest:
            base = "GCP/exports" if dest.abilities.layout == "gcp_tree" else ""
            prefix = f"{base}/{self.export}".strip("/")
            return {f.path[len(prefix) + 1 :].split("/")[0] for f in dest.list(prefix)}

    def remote_runs(self, destination: str) -> set[str]:
        """``{table}/{YYYYMMDD}/{run_id}`` of every run folder with files at ``destination``."""
        return {"/".join(path.split("/")[:3]) for path in self.remote_files(destination)}


def key(run: Run) -> str:
    return f"{run.folder.source.table}/{run.folder.date:%Y%m%d}/{run.run_id}"


@pytest.fixture
def rstack_factory(
    bare_stack_env: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., RetentionStack]]:
    """``rstack_factory(daily=N, monthly=M, **verify_settings)`` → a RetentionStack."""

    def make(daily: int = 1, monthly: int = 0, **verify_settings: Any) -> RetentionStack:
        raw = yaml.safe_load(bare_stack_env.config_path.read_text())
        token = uuid.uuid4().hex[:10]
        prefix, dataset = f"exports-{token}", f"ret_{token}"
        raw["export_prefix"] = prefix
        raw["datasets"] = [
            {
                "name": dataset,
                "destinations": ["box", "sftp:local"],
                "retention": {"daily": daily, "monthly": monthly},
            }
        ]
        raw["exports"] = [
            {
                "name": "q_" + token,
                "sql": "SELECT {date}",
                "destinations": ["box", "sftp:local"],
                "retention": {"daily": daily, "monthly": monthly},
            }
        ]
        raw["verify"] = {**raw.get("verify", {}), **verify_settings}
        path = tmp_path / f"config-{prefix}.yaml"
        path.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("OFFSITE_CONFIG", str(path))
        runtime.reset()
        return RetentionStack(bare_stack_env, path, prefix, dataset)

    yield make
    runtime.reset()
    clients.reset()
