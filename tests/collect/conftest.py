"""Fixtures of the collect tests: the worker's bare stack (GCS, Pub/Sub, OpenSSH sshd, Box API
server) and, as the partner, a real sshd serving a fresh directory per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.state import StackInfo
from shared.collect.copy import copy_file
from shared.collect.listing import list_and_fan_out
from shared.collect.messages import CollectFile, CollectRequest
from shared.config import Config, deep_merge, from_dict, read_file
from shared.destinations.memory import process_destination
from shared.errors import TransientError
from shared.messages import VerifyResult
from shared.topology import COLLECT_FILES, VERIFY_RESULTS
from tests.sftp.conftest import sftp_user, sshd, workdir
from tests.sftp.sshd_server import SftpUser, Sshd, user_dir

__all__ = ["sftp_user", "sshd", "workdir"]


def partner_fields(server: Sshd, port: int | None = None, known_hosts: str | None = None) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port or server.port,
        "username": server.user.name,
        "private_key": f"file:{server.client_key}",
        "known_hosts": known_hosts or server.known_hosts,
    }


@dataclass
class Collect:
    """One test's collect job on the stack: its config, partner directory, and how to run it."""

    stack: StackInfo
    partner_dir: Path
    sshd: Sshd
    user: SftpUser
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    _results_sub: str = ""
    _files_sub: str = ""
    results_seen: list[VerifyResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        admin = self.stack.pubsub_admin()
        self._results_sub = f"collect-results-{uuid.uuid4().hex[:10]}"
        self._files_sub = f"collect-files-{uuid.uuid4().hex[:10]}"
        admin.create_subscription(self._results_sub, VERIFY_RESULTS)
        admin.create_subscription(self._files_sub, COLLECT_FILES)

    @property
    def folder(self) -> str:
        return f"collect/{self.name}"

    def raw(self, job: dict[str, Any] | None = None, partner: dict[str, Any] | None = None, **extra: Any) -> Any:
        """The stack's config plus this test's job, as plain data (``job`` overrides its fields,
        ``partner`` the partner's; ``extra`` is merged over the top-level sections)."""
        raw = read_file(self.stack.config_path)
        fields = {
            "name": self.name,
            "partner": "partner",
            "directory": str(self.partner_dir),
            "destinations": ["memory"],
            **(job or {}),
        }
        raw["collect"] = {"partners": {"partner": {**partner_fields(self.sshd), **(partner or {})}}, "jobs": [fields]}
        return deep_merge(raw, extra)

    def config(self, job: dict[str, Any] | None = None, partner: dict[str, Any] | None = None, **extra: Any) -> Config:
        return from_dict(Config, self.raw(job, partner, **extra))

    def write(self, name: str, data: bytes, *, age_s: int = 3600) -> Path:
        path = self.partner_dir / name
        path.write_bytes(data)
        stamp = int(path.stat().st_mtime) - age_s
        os.utime(path, (stamp, stamp))
        return path

    def write_bytes_named(self, name: bytes, data: bytes, *, folder: bytes = b"") -> None:
        """A partner file named by raw bytes (a Latin-1 name from a Windows exporter), an hour
        old; ``folder`` (created, the partner's) is relative to the directory."""
        where = os.path.join(os.fsencode(self.partner_dir), folder)
        if folder and not os.path.isdir(where):
            os.makedirs(where)
            os.chown(where, self.user.uid, self.user.gid)
        path = os.path.join(where, name)
        with open(path, "wb") as out:
            out.write(data)
        stamp = int(os.stat(path).st_mtime) - 3600
        os.utime(path, (stamp, stamp))

    def list(self, config: Config, *, run_id: str | None = None, **request: Any) -> list[CollectFile]:
        """One listing; files still settling are listed again once (the Pub/Sub redelivery)."""
        run_id = run_id or f"r{uuid.uuid4().hex[:12]}"
        message = CollectRequest(collect=self.name, **request)
        try:
            return list_and_fan_out(config, message, run_id=run_id, day=_weekday())
        except TransientError:
            return list_and_fan_out(config, message, run_id=run_id, day=_weekday())

    def published_files(self) -> list[CollectFile]:
        admin = self.stack.pubsub_admin()
        out: list[CollectFile] = []
        while batch := admin.pull(self._files_sub, 50):
            out.extend(CollectFile.from_json(m["data_bytes"]) for m in batch)
        return [m for m in out if m.collect == self.name]

    def run(self, config: Config, **request: Any) -> list[str]:
        """A whole run in this process: list, then copy every fanned-out file. Returns the outcomes."""
        self.list(config, **request)
        return [copy_file(config, m) for m in self.published_files()]

    def results(self) -> list[VerifyResult]:
        admin = self.stack.pubsub_admin()
        while batch := admin.pull(self._results_sub, 50):
            self.results_seen.extend(VerifyResult.from_json(m["data_bytes"]) for m in batch)
        return [r for r in self.results_seen if r.source is not None and r.source.collect == self.name]

    def memory_files(self) -> dict[str, bytes]:
        mem = process_destination()
        return {f.path: mem.open(f.path).read() for f in mem.list(self.folder)}


def _weekday() -> Any:
    import datetime as dt

    return dt.date(2026, 11, 30)  # a Monday


@pytest.fixture
def collect(bare_stack_env: StackInfo, sshd: Sshd, sftp_user: SftpUser) -> Iterator[Collect]:
    """A job of this test on the worker's bare stack (no function competes for its messages)."""
    directory = user_dir(sftp_user, "collect")
    yield Collect(bare_stack_env, directory, sshd, sftp_user)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def user_folder(sftp_user: SftpUser) -> Callable[[str], Path]:
    return lambda label: user_dir(sftp_user, label)
