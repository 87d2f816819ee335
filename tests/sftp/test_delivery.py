"""transfer_sftp driven by real-shaped GCS finalize CloudEvents: GCS emulator, Pub/Sub emulator and
OpenSSH sshd from the worker's bare stack (partner ``local``), plus private sshds for failures."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.state import StackInfo
from shared import sftp_delivery
from shared.config import Config, Destinations, SftpPartner
from shared.config_load import load_config
from shared.errors import PermanentError, TransientError
from shared.gcp import clients, gcs
from shared.layout import RunFolder
from shared.messages import DeliveryReceipt, Source, TableExport
from shared.secrets import Secret
from shared.sftp_delivery import transfer_sftp
from shared.topology import DELIVERIES
from tests.sftp.conftest import make_partner
from tests.sftp.sshd_server import Sshd
from tests.sftp.tcp_proxy import CuttingProxy

TEMPLATE = json.loads((Path(__file__).parents[1] / "data" / "storage_finalized.json").read_text())
DAY = dt.date(2025, 1, 8)


@pytest.fixture
def stack(bare_stack_env: StackInfo) -> StackInfo:
    return bare_stack_env


@pytest.fixture
def config(stack: StackInfo) -> Config:
    return load_config(stack.config_path, environ={})


@pytest.fixture
def receipts(stack: StackInfo) -> Iterator[Callable[[], list[DeliveryReceipt]]]:
    """Receipts published on ``deliveries`` since the test started."""
    admin = stack.pubsub_admin()
    name = f"sftp-test-{uuid.uuid4().hex[:10]}"
    admin.create_subscription(name, DELIVERIES)
    seen: list[DeliveryReceipt] = []

    def pull() -> list[DeliveryReceipt]:
        while batch := admin.pull(name, 50):
            seen.extend(DeliveryReceipt.from_json(m["data_bytes"]) for m in batch)
        return list(seen)

    yield pull


def write_run(
    config: Config, destinations: tuple[str, ...], files: dict[str, bytes], *, query: bool = False, file_name: str = ""
) -> tuple[RunFolder, dict[str, Any]]:
    """A run folder as export_table leaves it: ``_run.json`` first, then the data files.
    Returns the folder and, per file, the object's resource (what the finalize event carries)."""
    run_id = f"r{uuid.uuid4().hex[:12]}"
    if query:
        source = Source(mode="query", project=config.project, export="orders_daily")
        template = file_name or "Orders_{YYYYMMDD}-*.csv.gz"
    else:
        source = Source(mode="table", project=config.project, dataset="sales", table="orders")
        template = file_name or "orders_{YYYYMMDD}-*.parquet"
    run = RunFolder(config.export_prefix, source, DAY, run_id)
    routing = TableExport(
        run_id=run_id,
        date=DAY,
        source=source,
        format="PARQUET",
        destinations=destinations,
        prefix=run.prefix,
        file_name=template,
    )
    gcs.write(config.bucket, run.run_name, routing.to_json(), "application/json", if_generation_match=0)
    resources = {}
    for name, data in files.items():
        info = gcs.write(config.bucket, run.prefix + name, data)
        blob = clients.storage_client().bucket(config.bucket).get_blob(run.prefix + name)
        resources[name] = dict(blob._properties) | {"generation": str(info.generation)}
    return run, resources


def finalize_event(resource: dict[str, Any]) -> dict[str, Any]:
    """A google.cloud.storage.object.v1.finalized CloudEvent shaped like tests/data/storage_finalized.json."""
    event = copy.deepcopy(TEMPLATE)
    event["id"] = str(uuid.uuid4().int)[:16]
    event["source"] = f"//storage.googleapis.com/projects/_/buckets/{resource['bucket']}"
    event["subject"] = f"objects/{resource['name']}"
    event["data"] = {**TEMPLATE["data"], **resource}
    return event


def shard(prefix: str, n: int = 0, ext: str = "parquet") -> str:
    return f"{prefix}_{DAY:%Y%m%d}-{n:012d}.{ext}"


def test_finalized_object_lands_on_the_partner_with_receipt_and_sha1(stack, config, receipts) -> None:  # type: ignore[no-untyped-def]
    data = {shard("orders", 0): os.urandom(3_000_000), shard("orders", 1): os.urandom(1234)}
    run, resources = write_run(config, ("sftp:local",), data)
    for name in data:
        transfer_sftp(finalize_event(resources[name]), config=config)
    folder = stack.sftp.directory / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id
    assert sorted(p.name for p in folder.iterdir()) == sorted(data)
    for name, content in data.items():
        assert hashlib.sha1((folder / name).read_bytes()).hexdigest() == hashlib.sha1(content).hexdigest()
        meta = gcs.stat(config.bucket, run.prefix + name).metadata  # type: ignore[union-attr]
        assert meta["sha1"] == hashlib.sha1(content).hexdigest()
        assert json.loads(meta["offsite-sftp-local"])["sha1"] == meta["sha1"]
    got = {r.object: r for r in receipts() if r.run_id == run.run_id}
    assert set(got) == {run.prefix + n for n in data}
    for name, content in data.items():
        receipt = got[run.prefix + name]
        assert (receipt.destination, receipt.status, receipt.size) == ("sftp:local", "uploaded", len(content))
        assert receipt.sha1 == hashlib.sha1(content).hexdigest()
        assert receipt.remote_path == str(folder / name)
        assert receipt.generation == int(resources[name]["generation"])


def test_redelivered_event_is_unchanged_and_not_rewritten(stack, config, receipts) -> None:  # type: ignore[no-untyped-def]
    name = shard("orders")
    run, resources = write_run(config, ("sftp:local",), {name: os.urandom(500_000)})
    event = finalize_event(resources[name])
    transfer_sftp(event, config=config)
    landed = stack.sftp.directory / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id / name
    before = os.stat(landed)
    transfer_sftp(event, config=config)  # the same event again (at-least-once delivery)
    after = os.stat(landed)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    statuses = [r.status for r in receipts() if r.run_id == run.run_id]
    assert statuses == ["uploaded", "unchanged"]
    assert sorted(p.name for p in landed.parent.iterdir()) == [name]


def test_query_export_goes_to_its_dated_folder_or_flat(stack, config, receipts, sshd: Sshd, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    flat = make_partner(sshd, workdir, flat=True)
    config = config.model_copy(
        update={"destinations": Destinations(box=None, sftp={**config.destinations.sftp, "flat": flat})}
    )
    name = shard("Orders", 0, "csv.gz")
    run, resources = write_run(config, ("sftp:local", "sftp:flat"), {name: b"id,amount\n1,2\n"}, query=True)
    transfer_sftp(finalize_event(resources[name]), config=config)
    assert (stack.sftp.directory / "orders_daily" / f"{DAY:%Y%m%d}" / name).read_bytes() == b"id,amount\n1,2\n"
    assert (workdir / name).read_bytes() == b"id,amount\n1,2\n"
    assert {r.destination for r in receipts() if r.run_id == run.run_id} == {"sftp:local", "sftp:flat"}


def test_objects_not_for_sftp_are_ignored(stack, config, receipts) -> None:  # type: ignore[no-untyped-def]
    name = shard("orders")
    run, resources = write_run(config, ("box",), {name: b"not for sftp"})
    transfer_sftp(finalize_event(resources[name]), config=config)
    control = resources[name] | {"name": run.run_name}
    transfer_sftp(finalize_event(control), config=config)  # _run.json itself: a control file
    outside = resources[name] | {"name": "elsewhere/file.bin"}
    transfer_sftp(finalize_event(outside), config=config)
    assert not (stack.sftp.directory / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id).exists()
    assert [r for r in receipts() if r.run_id == run.run_id] == []


def test_stale_generation_is_ignored(stack, config, receipts) -> None:  # type: ignore[no-untyped-def]
    name = shard("orders")
    run, resources = write_run(config, ("sftp:local",), {name: b"first"})
    gcs.write(config.bucket, run.prefix + name, b"second")  # a new generation replaced it
    transfer_sftp(finalize_event(resources[name]), config=config)
    assert not (stack.sftp.directory / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id / name).exists()


def test_one_partner_down_others_delivered_once(stack, config, receipts, private_sshd: Sshd, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    down = make_partner(private_sshd, workdir)
    config = config.model_copy(
        update={"destinations": Destinations(box=None, sftp={**config.destinations.sftp, "down": down})}
    )
    name = shard("orders")
    run, resources = write_run(config, ("sftp:local", "sftp:down"), {name: os.urandom(200_000)})
    event = finalize_event(resources[name])
    private_sshd.stop()
    with pytest.raises(TransientError, match="sftp:down"):
        transfer_sftp(event, config=config)
    landed = stack.sftp.directory / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id / name
    first = os.stat(landed)
    private_sshd.start()
    transfer_sftp(event, config=config)  # the redelivery
    assert os.stat(landed).st_mtime_ns == first.st_mtime_ns
    assert (workdir / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id / name).read_bytes() == landed.read_bytes()
    got = [(r.destination, r.status) for r in receipts() if r.run_id == run.run_id]
    assert sorted(got) == [("sftp:down", "uploaded"), ("sftp:local", "unchanged"), ("sftp:local", "uploaded")]


def test_cut_mid_transfer_publishes_nothing_then_the_retry_completes(
    stack, config, receipts, sshd: Sshd, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sftp_delivery, "ATTEMPTS", 1)  # one try per event: the redelivery is the retry
    proxy = CuttingProxy(sshd.port, cut_after_bytes=2_000_000)
    try:
        known = Secret(f"[127.0.0.1]:{proxy.port} {' '.join(sshd.host_public_key.split()[:2])}")
        flaky = make_partner(sshd, workdir, port=proxy.port, known_hosts=known)
        config = config.model_copy(update={"destinations": Destinations(box=None, sftp={"flaky": flaky})})
        name = shard("orders")
        data = os.urandom(8_000_000)
        run, resources = write_run(config, ("sftp:flaky",), {name: data})
        event = finalize_event(resources[name])
        with pytest.raises(TransientError):
            transfer_sftp(event, config=config)
        folder = workdir / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id
        assert not (folder / name).exists()
        assert [p.name for p in folder.iterdir()] in ([], [name + ".partial"])
        proxy.cut_after_bytes = None
        transfer_sftp(event, config=config)
        assert (folder / name).read_bytes() == data
        assert sorted(p.name for p in folder.iterdir()) == [name]
        assert [r.status for r in receipts() if r.run_id == run.run_id] == ["uploaded"]
    finally:
        proxy.close()


def test_permission_denied_is_permanent_and_names_the_path(stack, config, sshd: Sshd, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    locked = workdir / "locked"
    locked.mkdir(mode=0o755)  # root's: the login user cannot create folders here
    partner: SftpPartner = make_partner(sshd, locked)
    config = config.model_copy(update={"destinations": Destinations(box=None, sftp={"locked": partner})})
    name = shard("orders")
    _, resources = write_run(config, ("sftp:locked",), {name: b"data"})
    with pytest.raises(PermanentError, match=str(locked)) as failed:
        transfer_sftp(finalize_event(resources[name]), config=config)
    assert failed.value.context["destination"] == "sftp:locked"  # type: ignore[attr-defined]
