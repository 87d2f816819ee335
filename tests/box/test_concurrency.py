"""Several functions at once: the same folder tree, the same file (real threads, real server)."""

from __future__ import annotations

import hashlib
import io
import os

from devstack.boxapi import BoxApiServer
from shared.config import BoxDestination as BoxSettings
from shared.destinations.box.destination import BoxDestination
from shared.destinations.box.folders import clear_cache
from tests.box.pipeline import Pipeline
from tests.threads import together

TREE = "GCP/bigquery/sales/orders/20250108/rconcurrent"


def test_two_uploads_create_one_missing_tree(settings: BoxSettings, box_server: BoxApiServer) -> None:
    # Both requests for each folder are held at the server, so they really race.
    box_server.add_fault("create_folder", "delay", seconds=0.2, count=40)
    one, two = BoxDestination(settings), BoxDestination(settings)
    data = {name: os.urandom(10_000) for name in ("part-0.parquet", "part-1.parquet")}
    clear_cache()
    together(
        *(
            lambda n=n, d=d, b=b: b.put(f"{TREE}/{n}", io.BytesIO(d), len(d))
            for (n, d), b in zip(data.items(), (one, two), strict=True)
        )
    )

    check = BoxDestination(settings)
    path = ""
    for name in TREE.split("/"):
        entries = check.entries(path)
        assert [e["name"] for e in entries if e["type"] == "folder"] == [name]  # exactly one folder per level
        path = f"{path}/{name}" if path else name
    files = {f.path.rsplit("/", 1)[1]: f.sha1 for f in check.list(TREE)}
    assert files == {n: hashlib.sha1(d).hexdigest() for n, d in data.items()}
    statuses = box_server.requests("create_folder")["statuses"]["create_folder"]
    assert statuses.get("409", 0) >= 1, "the race was not exercised"


def test_the_same_file_delivered_twice_at_once(pipeline: Pipeline, box_server: BoxApiServer) -> None:
    run = pipeline.start_run()
    item = pipeline.put(run.prefix + "orders_20250108-000000000000.parquet", os.urandom(50_000))
    event = pipeline.event(item)
    box_server.add_fault("upload_file", "delay", seconds=0.3, count=2)  # both uploads in flight together
    together(lambda: pipeline.deliver(event), lambda: pipeline.deliver(event))

    (remote,) = pipeline.box().list(f"GCP/bigquery/sales/orders/20250108/{run.run_id}")
    assert remote.sha1 == item.sha1
    assert pipeline.versions(remote.remote_id) == []
    assert sorted(r.status for r in pipeline.receipts(2)) == ["unchanged", "uploaded"]
