"""The daily pass lists a table's folders by name and looks into a run folder only to prune it.

On Box a listing is one call per folder, and Box limits the calls a user makes a minute: the
pass used to list every kept run folder's files too, about twice the calls of a walk by folder
names (docs/capacity.md, "Retention's daily pass"). ``offsite prune`` still counts every
folder's files and bytes, for its table.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from devstack.state import StackInfo
from shared.destinations import factory
from shared.destinations.box.destination import BoxDestination
from shared.retention.prune import prune
from shared.retention.scheduled import daily_pass
from shared.runtime import config
from tests.retention.conftest import RetentionStack, key

pytestmark = pytest.mark.stack

DAYS = [dt.date(2025, 6, day) for day in (1, 2, 3, 4)]


def folder_listings(info: StackInfo, after: int) -> list[str]:
    """The paths of the Box folder listings (``GET /folders/{id}/items``) after request ``after``."""
    url = f"{info.box.base_url}/_admin/requests?operation=get_folder_items"
    with urllib.request.urlopen(url, timeout=30) as response:
        entries: list[dict[str, Any]] = json.loads(response.read())["requests"]
    return [e["path"] for e in entries if e["seq"] > after]


def last_request(info: StackInfo) -> int:
    with urllib.request.urlopen(f"{info.box.base_url}/_admin/requests", timeout=30) as response:
        entries = json.loads(response.read())["requests"]
    return max((int(e["seq"]) for e in entries), default=0)


def run_folders(rs: RetentionStack, runs: list[Any]) -> dict[str, tuple[str, int, int]]:
    """Each run's folder at Box: its id, and the files and bytes in it (data and delivered manifest)."""
    found = {}
    with factory.opened("box", rs.config) as dest:
        assert isinstance(dest, BoxDestination)
        for run in runs:
            path = f"GCP/bigquery/{rs.dataset}/orders/{run.folder.date:%Y%m%d}/{run.run_id}"
            folder_id, files = dest.folders.lookup(path), list(dest.list(path, hashes=False))
            assert folder_id is not None and files, path
            found[run.run_id] = (folder_id, len(files), sum(f.size for f in files))
    return found


def test_the_daily_pass_looks_into_no_run_folder_it_keeps(rstack_factory: Callable[..., RetentionStack]) -> None:
    rs = rstack_factory(daily=2)
    runs = [rs.run_of(day, "box") for day in DAYS]  # daily: 2 keeps the two newest
    folders = run_folders(rs, runs)
    since = last_request(rs.info)

    assert daily_pass(config(), now=dt.datetime.now(dt.UTC)).pruned == 2

    listed = folder_listings(rs.info, since)
    looked_into = [run.run_id for run in runs if f"/2.0/folders/{folders[run.run_id][0]}/items" in listed]
    assert looked_into == [runs[0].run_id, runs[1].run_id]  # the pruned ones, measured for their report
    assert rs.remote_runs("box") == {key(runs[2]), key(runs[3])}
    [pruned] = [r for r in rs.results_for(runs[0], "box") if r.status == "pruned"]
    _, files, size = folders[runs[0].run_id]
    assert f"({files} files, {size} bytes)" in (pruned.reason or ""), pruned.reason


def test_offsite_prune_still_shows_every_folders_files_and_bytes(rstack_factory: Callable[..., RetentionStack]) -> None:
    rs = rstack_factory(daily=2)
    runs = [rs.run_of(day, "box") for day in DAYS[:3]]
    folders = run_folders(rs, runs)
    summary = prune(config(), dataset=rs.dataset, destination="box", dry_run=True)
    rows = {o.path.rsplit("/", 1)[-1]: (o.action, o.files, o.bytes) for o in summary.outcomes}
    actions = dict(zip((run.run_id for run in runs), ("prune", "keep", "keep"), strict=True))
    assert rows == {run_id: (actions[run_id], files, size) for run_id, (_, files, size) in folders.items()}
