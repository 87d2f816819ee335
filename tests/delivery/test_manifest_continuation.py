"""A manifest copy longer than one invocation's budget continues on its delivery-continuations
message, like a data file, until the partner holds it whole and its receipt is published."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid

from shared.delivery import checkpoint
from shared.events import StorageObject
from shared.gcp import clients, gcs
from shared.ids import DestinationId, Stage
from shared.stages.deliver import handler_for
from shared.topology import DELIVERY_CONTINUATIONS
from tests.resume_kit import BigFile, continuation_event
from tests.run_folders import run_manifest
from tests.sftp import delivery_kit
from tests.sftp.delivery_kit import finalize_event

stack, config, receipts = delivery_kit.stack, delivery_kit.config, delivery_kit.receipts

WIDE_SCHEMA = [{"name": f"col_{i}", "type": "STRING", "description": "x" * 900} for i in range(3500)]  # ~3 MiB


def test_a_manifest_copy_that_pauses_on_its_budget_is_resumed_to_the_end(stack, config, receipts) -> None:  # type: ignore[no-untyped-def]
    destination = DestinationId("sftp", "local")
    file = BigFile.written(config, destination, 1000)
    handler_for(Stage.TRANSFER_SFTP, budget_s=None)(file.finalize, config)  # the data file arrives whole
    name = file.remote.rsplit("/", 1)[1]
    generation = gcs.stat(config.bucket, file.run.prefix + name).generation  # type: ignore[union-attr]
    manifest = run_manifest(config.bucket, file.run, {name: file.data}, {name: generation}, (str(destination),))
    manifest = dataclasses.replace(manifest, schema=WIDE_SCHEMA)  # a wide table: more than one chunk
    gcs.write(config.bucket, file.run.manifest_name, manifest.to_json(), "application/json", if_generation_match=0)
    blob = clients.storage_client().bucket(config.bucket).get_blob(file.run.manifest_name)
    admin = stack.pubsub_admin()
    subscription = f"continuations-{uuid.uuid4().hex[:8]}"
    admin.create_subscription(subscription, DELIVERY_CONTINUATIONS)
    slow_partner = handler_for(Stage.TRANSFER_SFTP, budget_s=0.0)  # one chunk per invocation

    slow_partner(finalize_event(dict(blob._properties)), config)
    remote = stack.sftp.directory / file.remote.rsplit("/", 1)[0] / "_manifest.json"
    for _ in range(20):
        mine = [m for m in admin.pull(subscription, 10) if m.get("attributes", {}).get("run_id") == file.run.run_id]
        if not mine:
            break
        for message in mine:
            assert json.loads(base64.b64decode(message["data"]))["name"] == file.run.delivered_manifest_name
            slow_partner(continuation_event(stack, message), config)

    sealed = gcs.read_bytes(config.bucket, file.run.delivered_manifest_name)
    assert remote.exists(), "the manifest copy was left as a partial upload"
    assert remote.read_bytes() == sealed
    assert sorted(p.name for p in remote.parent.iterdir()) == sorted([name, "_manifest.json"])
    copies = [r for r in receipts() if r.object == file.run.delivered_manifest_name]
    assert [r.destination for r in copies] == ["sftp:local"]  # the one receipt verify waits for
    info = gcs.stat(config.bucket, file.run.delivered_manifest_name, missing_ok=False)
    remote_path = str(remote.relative_to(stack.sftp.directory))
    leftover = checkpoint.load(config.state_bucket_name, destination, StorageObject.from_info(info), remote_path)
    assert leftover is None, "its checkpoint was left behind"
