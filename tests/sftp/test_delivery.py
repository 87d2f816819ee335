"""transfer_sftp driven by real-shaped GCS finalize CloudEvents: GCS emulator, Pub/Sub emulator and
OpenSSH sshd from the worker's bare stack (partner ``local``), plus private sshds for failures."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from shared.config import Destinations, SftpPartner
from shared.delivery import operation as delivery_operation
from shared.errors import PermanentError, TransientError
from shared.gcp import gcs
from shared.ids import Stage
from shared.secrets import Secret
from shared.stages.deliver import handler_for
from tests.sftp import delivery_kit
from tests.sftp.conftest import make_partner
from tests.sftp.delivery_kit import DAY, finalize_event, shard, write_run
from tests.sftp.sshd_server import Sshd
from tests.sftp.tcp_proxy import CuttingProxy

# the delivery tests' fixtures (a bare stack: no function competes for the events)
stack, config, receipts = delivery_kit.stack, delivery_kit.config, delivery_kit.receipts

transfer_sftp = handler_for(Stage.TRANSFER_SFTP)


def test_finalized_object_lands_on_the_partner_with_receipt_and_sha1(stack, config, receipts) -> None:  # type: ignore[no-untyped-def]
    data = {shard("orders", 0): os.urandom(3_000_000), shard("orders", 1): os.urandom(1234)}
    run, resources = write_run(config, ("sftp:local",), data)
    for name in data:
        transfer_sftp(finalize_event(resources[name]), config)
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
    transfer_sftp(event, config)
    landed = stack.sftp.directory / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id / name
    before = os.stat(landed)
    transfer_sftp(event, config)  # the same event again (at-least-once delivery)
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
    transfer_sftp(finalize_event(resources[name]), config)
    assert (stack.sftp.directory / "orders_daily" / f"{DAY:%Y%m%d}" / name).read_bytes() == b"id,amount\n1,2\n"
    assert (workdir / name).read_bytes() == b"id,amount\n1,2\n"
    assert {r.destination for r in receipts() if r.run_id == run.run_id} == {"sftp:local", "sftp:flat"}


def test_objects_not_for_sftp_are_ignored(stack, config, receipts) -> None:  # type: ignore[no-untyped-def]
    name = shard("orders")
    run, resources = write_run(config, ("box",), {name: b"not for sftp"})
    transfer_sftp(finalize_event(resources[name]), config)
    control = resources[name] | {"name": run.run_name}
    transfer_sftp(finalize_event(control), config)  # _run.json itself: a control file
    outside = resources[name] | {"name": "elsewhere/file.bin"}
    transfer_sftp(finalize_event(outside), config)
    assert not (stack.sftp.directory / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id).exists()
    assert [r for r in receipts() if r.run_id == run.run_id] == []


def test_stale_generation_is_ignored(stack, config, receipts) -> None:  # type: ignore[no-untyped-def]
    name = shard("orders")
    run, resources = write_run(config, ("sftp:local",), {name: b"first"})
    gcs.write(config.bucket, run.prefix + name, b"second")  # a new generation replaced it
    transfer_sftp(finalize_event(resources[name]), config)
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
        transfer_sftp(event, config)
    landed = stack.sftp.directory / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id / name
    first = os.stat(landed)
    private_sshd.start()
    transfer_sftp(event, config)  # the redelivery
    assert os.stat(landed).st_mtime_ns == first.st_mtime_ns
    assert (workdir / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id / name).read_bytes() == landed.read_bytes()
    got = [(r.destination, r.status) for r in receipts() if r.run_id == run.run_id]
    assert sorted(got) == [("sftp:down", "uploaded"), ("sftp:local", "unchanged"), ("sftp:local", "uploaded")]


def test_cut_mid_transfer_publishes_nothing_then_the_retry_completes(
    stack, config, receipts, sshd: Sshd, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(delivery_operation, "ATTEMPTS", 1)  # one try per event: the redelivery is the retry
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
            transfer_sftp(event, config)
        folder = workdir / "sales/orders" / f"{DAY:%Y%m%d}" / run.run_id
        assert not (folder / name).exists()
        assert [p.name for p in folder.iterdir()] in ([], [name + ".partial"])
        proxy.cut_after_bytes = None
        transfer_sftp(event, config)
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
        transfer_sftp(finalize_event(resources[name]), config)
    assert failed.value.context["destination"] == "sftp:locked"  # type: ignore[attr-defined]
