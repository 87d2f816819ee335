"""A small export pipeline around the upload_box handler, on the emulators.

It does what the export stage does for one run (``_run.json`` first, then data files in GCS),
builds the finalize CloudEvents GCS would send (the shape of tests/data/storage_finalized.json),
and reads what upload_box produced: Box files, receipts on ``deliveries``, GCS metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from google.api_core import exceptions as gexc

from devstack.boxapi import BoxApiServer
from shared.config import Config
from shared.destinations.box.destination import BoxDestination
from shared.gcp import clients, gcs, pubsub
from shared.ids import Stage
from shared.layout import RunFolder
from shared.messages import DeliveryReceipt, Source, TableExport
from shared.stages.deliver import handler_for
from shared.topology import DELIVERIES, GCS_FINALIZED
from tests.box.support import api_get

BLOCK = 4 * 1024 * 1024


@dataclass
class ExportedFile:
    name: str  # GCS object name
    size: int
    sha1: str
    generation: int


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; returns their SHA-1."""
    digest = hashlib.sha1()
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(BLOCK, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


class Pipeline:
    def __init__(self, config: Config, box_server: BoxApiServer) -> None:
        self.config = config
        self.box_server = box_server
        self.bucket = config.bucket
        self.subscription = ""

    def __enter__(self) -> Self:
        clients.storage_client().create_bucket(self.bucket)
        publisher, subscriber = clients.publisher_client(), clients.subscriber_client()
        topic = f"projects/{self.config.project}/topics/{DELIVERIES}"
        try:
            publisher.create_topic(name=topic)
        except gexc.AlreadyExists:
            pass
        self.subscription = f"projects/{self.config.project}/subscriptions/deliveries-{uuid.uuid4().hex[:10]}"
        subscriber.create_subscription(name=self.subscription, topic=topic)
        return self

    def __exit__(self, *exc: object) -> None:
        clients.subscriber_client().delete_subscription(subscription=self.subscription)

    # ---- the export side -------------------------------------------------------------------

    def start_run(
        self,
        *,
        dataset: str = "sales",
        table: str = "orders",
        export: str | None = None,
        date: dt.date = dt.date(2025, 1, 8),
        destinations: tuple[str, ...] = ("box",),
        file_name: str | None = None,
    ) -> TableExport:
        """Write the run's ``_run.json`` (as export_table does, before any data file)."""
        run_id = f"r{uuid.uuid4().hex[:12]}"
        if export is None:
            source = Source(mode="table", project=self.config.project, dataset=dataset, table=table)
            file_name = file_name or f"{table}_{{YYYYMMDD}}-*.parquet"
        else:
            source = Source(mode="query", project=self.config.project, export=export)
            file_name = file_name or "Product_{YYYYMMDD}-*.csv.gz"
        folder = RunFolder(self.config.export_prefix, source, date, run_id)
        run = folder.export_task("PARQUET" if export is None else "CSV", destinations, file_name)
        assert gcs.write_if_absent(self.bucket, folder.run_name, run.to_json(), "application/json")
        return run

    def put(self, name: str, data: bytes | Path) -> ExportedFile:
        """Upload an object (bytes, or a file for big ones) and describe the generation made."""
        blob = clients.storage_client().bucket(self.bucket).blob(name)
        if isinstance(data, Path):
            blob.upload_from_filename(str(data), content_type="application/octet-stream")
            digest = hashlib.sha1()
            with open(data, "rb") as stream:
                while block := stream.read(BLOCK):
                    digest.update(block)
            sha1 = digest.hexdigest()
        else:
            blob.upload_from_string(data, content_type="application/octet-stream")
            sha1 = hashlib.sha1(data).hexdigest()
        return ExportedFile(name=name, size=int(blob.size), sha1=sha1, generation=int(blob.generation))

    def put_random(self, run: TableExport, filename: str, size: int, scratch: Path) -> ExportedFile:
        path = scratch / f"{uuid.uuid4().hex}.bin"
        random_file(path, size)
        try:
            return self.put(run.prefix + filename, path)
        finally:
            path.unlink()

    def event(self, exported: ExportedFile) -> dict[str, Any]:
        """The finalize CloudEvent GCS sends for this object generation (structured, as a dict)."""
        info = gcs.stat(self.bucket, exported.name, exported.generation, missing_ok=False)
        assert info is not None
        now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid4().int)[:16],
            "source": f"//storage.googleapis.com/projects/_/buckets/{self.bucket}",
            "type": GCS_FINALIZED,
            "datacontenttype": "application/json",
            "subject": f"objects/{exported.name}",
            "time": now,
            "data": {
                "kind": "storage#object",
                "name": exported.name,
                "bucket": self.bucket,
                "generation": str(info.generation),
                "metageneration": "1",
                "contentType": info.content_type or "application/octet-stream",
                "size": str(info.size),
                "md5Hash": info.md5,
                "crc32c": info.crc32c,
                "metadata": info.metadata,
                "timeCreated": now,
                "updated": now,
            },
        }

    def deliver(self, exported: ExportedFile | dict[str, Any]) -> None:
        event = exported if isinstance(exported, dict) else self.event(exported)
        handler_for(Stage.UPLOAD_BOX)(event, self.config)

    # ---- what came out ---------------------------------------------------------------------

    def box(self) -> BoxDestination:
        assert self.config.destinations.box is not None
        return BoxDestination(self.config.destinations.box)

    def metadata(self, name: str) -> dict[str, str]:
        info = gcs.stat(self.bucket, name)
        assert info is not None
        return info.metadata

    def receipts(self, expected: int, timeout_s: float = 30.0) -> list[DeliveryReceipt]:
        """Pull receipts until ``expected`` arrived (or the timeout); acks what it pulls."""
        subscriber = clients.subscriber_client()
        found: list[DeliveryReceipt] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            received = pubsub.pull_waiting(self.subscription, 100)
            if received:
                subscriber.acknowledge(subscription=self.subscription, ack_ids=[m.ack_id for m in received])
            else:
                time.sleep(0.2)
            found.extend(DeliveryReceipt.from_json(m.message.data) for m in received)
        return found

    def no_more_receipts(self, settle_s: float = 3.0) -> list[DeliveryReceipt]:
        """Receipts that arrive within ``settle_s`` (for asserting that none did); not acked."""
        deadline = time.monotonic() + settle_s
        found: dict[str, DeliveryReceipt] = {}
        while time.monotonic() < deadline:
            for m in pubsub.pull_waiting(self.subscription, 100):
                found.setdefault(m.message.message_id, DeliveryReceipt.from_json(m.message.data))
            time.sleep(0.2)
        return list(found.values())

    def versions(self, file_id: str) -> list[dict[str, Any]]:
        """Box's previous versions of a file (the current one is not listed, as in Box)."""
        return api_get(self.box_server, f"/files/{file_id}/versions")["entries"]
