"""A folder a Box user renamed or moved while a warm instance has its id cached: the id now
names a folder at another path. Puts, stat, list and delete_folder act on the path, never on
the user's folder (and list survives a subfolder deleted while it walks the tree)."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator

import pytest

from devstack.boxapi import BoxApiServer
from shared.config import BoxDestination as BoxSettings
from shared.destinations.box.destination import BoxDestination
from tests.box.support import api_get, api_put

DATED = "GCP/bigquery/ds/t/20250108"
MB = 1_000_000


@pytest.fixture
def box(settings: BoxSettings) -> Iterator[BoxDestination]:
    dest = BoxDestination(settings)
    yield dest
    dest.http.close()


def listed_while_deleted(box: BoxDestination, box_server: BoxApiServer, folder_id: str | None, skip: int) -> object:
    """``box.list(DATED)`` (its paths, or what it raised) while folder ``folder_id`` is deleted:
    the listing after ``skip`` others is held 3 s by the server, and the folder deleted then."""
    assert folder_id is not None
    box_server.add_fault("get_folder_items", "delay", seconds=3, skip=skip, count=1)
    listed: dict[str, object] = {}

    def walk() -> None:
        try:
            listed["paths"] = [f.path for f in box.list(DATED)]
        except Exception as exc:  # noqa: BLE001 - judged by the caller
            listed["paths"] = exc

    walker = threading.Thread(target=walk)
    walker.start()
    while box_server.faults():  # the listing is held
        time.sleep(0.05)
    box.http.call(
        "DELETE", f"{box.http.api}/folders/{folder_id}", what="retention", params={"recursive": "true"}
    ).close()
    walker.join(60)
    return listed["paths"]


def names(box_server: BoxApiServer, folder_id: str) -> list[str]:
    return [e["name"] for e in api_get(box_server, f"/folders/{folder_id}/items")["entries"]]


def renamed_by_a_user(box: BoxDestination, box_server: BoxApiServer, how: str) -> str:
    """Put ``DATED/a.csv`` (the instance caches the folder ids), then a Box user renames the
    dated folder or moves it into another folder under the root; returns its id."""
    box.put(f"{DATED}/a.csv", io.BytesIO(b"a"), 1)
    dated = box.folders.lookup(DATED)
    assert dated is not None
    if how == "renamed":
        api_put(box_server, f"/folders/{dated}", {"name": "20250108-old"})
    else:
        elsewhere = box.folders.ensure("attic")
        api_put(box_server, f"/folders/{dated}", {"parent": {"id": elsewhere}})
    return dated


@pytest.mark.parametrize("how", ["renamed", "moved"])
def test_puts_after_a_user_moved_the_folder_land_at_the_path(
    box: BoxDestination, box_server: BoxApiServer, how: str
) -> None:
    """They went on into the user's folder: a new file there, and the same bytes "unchanged"."""
    users = renamed_by_a_user(box, box_server, how)
    assert box.put(f"{DATED}/b.csv", io.BytesIO(b"b"), 1).status == "uploaded"
    assert box.put(f"{DATED}/a.csv", io.BytesIO(b"a"), 1).status == "uploaded"
    big = os.urandom(20 * MB + 1)
    assert box.put(f"{DATED}/c.bin", io.BytesIO(big), len(big)).status == "uploaded"
    assert box.put(f"{DATED}/r2/d.csv", io.BytesIO(b"d"), 1).status == "uploaded"  # a new run folder
    assert names(box_server, users) == ["a.csv"], "the user's folder got nothing"
    expected = ("a.csv", "b.csv", "c.bin", "r2/d.csv")
    assert [f.path for f in box.list(DATED)] == [f"{DATED}/{n}" for n in expected]
    assert box.folders.lookup(DATED) != users


@pytest.mark.parametrize("how", ["renamed", "moved"])
def test_stat_and_list_do_not_follow_a_moved_folder(box: BoxDestination, box_server: BoxApiServer, how: str) -> None:
    """They reported the path present: verify said in sync while nothing was at the path."""
    renamed_by_a_user(box, box_server, how)
    assert box.stat(f"{DATED}/a.csv") is None
    assert list(box.list(DATED)) == []
    assert box.folders.lookup(DATED) is None


@pytest.mark.parametrize("how", ["renamed", "moved"])
def test_delete_folder_leaves_a_moved_folder_alone(box: BoxDestination, box_server: BoxApiServer, how: str) -> None:
    """Retention's delete_folder(path) deleted the user's renamed folder."""
    users = renamed_by_a_user(box, box_server, how)
    assert box.delete_folder(DATED) is True
    assert names(box_server, users) == ["a.csv"], "the user's folder is untouched"


def test_a_cached_folder_still_in_place_costs_one_check_every_30_s(
    box: BoxDestination, box_server: BoxApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One GET for the check, then none while it is recent: Box's per-user rate limit binds first."""
    from shared.destinations.box import folders

    box.put(f"{DATED}/a.csv", io.BytesIO(b"a"), 1)
    box_server.clear_requests()
    assert box.stat(f"{DATED}/a.csv") is not None
    assert box_server.request_counts() == {"get_folder": 1, "get_folder_items": 1}
    box_server.clear_requests()
    assert box.stat(f"{DATED}/a.csv") is not None and [f.path for f in box.list(DATED)] == [f"{DATED}/a.csv"]
    assert box_server.request_counts() == {"get_folder_items": 2}  # checked a moment ago: not asked again
    monkeypatch.setattr(folders, "CONFIRMED_FOR_S", 0.0)
    box_server.clear_requests()
    assert box.stat(f"{DATED}/a.csv") is not None
    assert box_server.request_counts() == {"get_folder": 1, "get_folder_items": 1}


@pytest.mark.parametrize("how", ["renamed", "moved"])
def test_delete_folder_checks_even_a_folder_checked_a_moment_ago(
    box: BoxDestination, box_server: BoxApiServer, how: str
) -> None:
    box.put(f"{DATED}/a.csv", io.BytesIO(b"a"), 1)
    assert box.stat(f"{DATED}/a.csv") is not None  # the dated folder checked now
    dated = box.folders.lookup(DATED)
    assert dated is not None
    if how == "renamed":
        api_put(box_server, f"/folders/{dated}", {"name": "20250108-old"})
    else:
        api_put(box_server, f"/folders/{dated}", {"parent": {"id": box.folders.ensure("attic")}})
    assert box.delete_folder(DATED) is True
    assert names(box_server, dated) == ["a.csv"], "the user's folder is untouched"


def test_a_subfolder_deleted_while_list_walks_the_tree_is_left_out(
    box: BoxDestination, box_server: BoxApiServer
) -> None:
    """Retention deletes r1 after list read the dated folder and before it reads r1: that 404
    was a PermanentError (verify reported failed)."""
    for run in ("r1", "r2"):
        box.put(f"{DATED}/{run}/x.csv", io.BytesIO(b"x"), 1)
    doomed = box.folders.lookup(f"{DATED}/r1")
    # the walk's second listing (of r1) is held while r1 is deleted
    listed = listed_while_deleted(box, box_server, doomed, skip=1)
    assert listed == [f"{DATED}/r2/x.csv"]


def test_a_folder_deleted_while_it_is_listed_lists_empty(box: BoxDestination, box_server: BoxApiServer) -> None:
    box.put(f"{DATED}/x.csv", io.BytesIO(b"x"), 1)
    dated = box.folders.lookup(DATED)
    listed = listed_while_deleted(box, box_server, dated, skip=0)  # the listing of DATED held
    assert listed == []
