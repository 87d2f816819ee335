"""Behaviour every Destination backend must share (see conftest.py for the backends)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from shared.destinations.base import Abilities, Destination, MemoryLedger, Progress, PutResult, Readable, Resumable
from shared.errors import OffsiteError, RejectedInput, TransientError
from shared.ids import DestinationId
from tests.threads import together


def put_bytes(dest: Destination, path: str, data: bytes) -> PutResult:
    return dest.put(path, io.BytesIO(data), len(data))


def read_back(dest: Destination, path: str) -> bytes:
    assert isinstance(dest, Readable), f"{dest.name} must be Readable so verify can hash by download"
    with dest.open(path) as stream:
        return stream.read()


def test_is_a_destination(destination: Destination) -> None:
    assert isinstance(destination, Destination)
    assert isinstance(destination.id, DestinationId) and DestinationId.parse(str(destination.id)) == destination.id
    abilities = destination.abilities
    assert isinstance(abilities, Abilities)
    assert abilities.hashes <= {"sha1"}
    assert abilities.layout in ("gcp_tree", "nested", "flat")
    assert abilities.partial_suffix is None or abilities.partial_suffix.startswith(".")


def test_location_names_the_file(destination: Destination) -> None:
    put_bytes(destination, "loc/here.txt", b"x")
    assert destination.location("loc/here.txt").endswith("loc/here.txt")


def test_a_ledger_proves_unchanged_without_a_server_hash(destination: Destination) -> None:
    """What a backend that needs a ledger records lets a later put skip without reading."""
    data = os.urandom(10_000)
    ledger = MemoryLedger()
    first = destination.put("led/file.bin", io.BytesIO(data), len(data), ledger=ledger)
    assert first.status == "uploaded"
    unread = io.BytesIO(b"")  # a source that would fail the size check if it were read
    again = destination.put("led/file.bin", unread, len(data), sha1=first.sha1, ledger=ledger)
    assert again.status == "unchanged" and again.sha1 == hashlib.sha1(data).hexdigest()
    if destination.abilities.needs_ledger:
        assert ledger.recall("led/file.bin") is not None


def test_a_put_never_removes_a_file_named_like_its_partial(destination: Destination) -> None:
    """A backend that declares a partial suffix (verify names leftovers by it) either keeps a file
    named NAME + suffix apart from NAME or refuses that name (RejectedInput): a put of NAME never
    takes the delivered file for its own leftover and deletes it (SFTP did)."""
    suffix = destination.abilities.partial_suffix
    if suffix is None:
        assert destination.abilities.atomic_put, "a backend without partial files must publish atomically"
        return
    try:
        put_bytes(destination, "p/left.bin" + suffix, b"half")
        refused = False
    except RejectedInput as exc:
        assert suffix in str(exc) and "partial_suffix" in str(exc)
        refused = True
    put_bytes(destination, "p/left.bin", b"whole")
    listed = sorted(f.path for f in destination.list("p"))
    assert listed == ["p/left.bin"] if refused else listed == ["p/left.bin", "p/left.bin" + suffix]


def test_put_new_file_then_stat_and_list(destination: Destination) -> None:
    data = os.urandom(70_000)
    result = put_bytes(destination, "a/b/file.bin", data)
    assert result.status == "uploaded"
    assert result.size == len(data)
    assert result.sha1 == hashlib.sha1(data).hexdigest()
    info = destination.stat("a/b/file.bin")
    assert info is not None and info.size == len(data) and info.path == "a/b/file.bin"
    if "sha1" in destination.abilities.hashes:
        assert info.sha1 == hashlib.sha1(data).hexdigest()
    assert [f.path for f in destination.list("a")] == ["a/b/file.bin"]
    assert read_back(destination, "a/b/file.bin") == data


def test_a_file_is_read_from_an_offset(destination: Destination) -> None:
    """A ranged read: verify.rows takes a Parquet file's footer from its end without the rest."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    put_bytes(destination, "range/file.bin", data)
    assert isinstance(destination, Readable)
    for start in (1, 2 * 1024 * 1024, len(data) - 5):
        with destination.open("range/file.bin", start) as stream:
            assert stream.read() == data[start:], start
    with destination.open("range/file.bin", 4) as stream:  # closed before its end
        assert stream.read(6) == data[4:10]
    assert read_back(destination, "range/file.bin") == data  # and the whole file after it


def test_same_bytes_again_is_unchanged(destination: Destination) -> None:
    data = b"same bytes\n" * 100
    put_bytes(destination, "x/same.txt", data)
    again = put_bytes(destination, "x/same.txt", data)
    assert again.status == "unchanged"
    known = destination.put("x/same.txt", io.BytesIO(data), len(data), sha1=hashlib.sha1(data).hexdigest())
    assert known.status == "unchanged"
    assert [f.path for f in destination.list("x")] == ["x/same.txt"]


def test_different_bytes_replace_the_file(destination: Destination) -> None:
    put_bytes(destination, "v/file.txt", b"first version")
    second = put_bytes(destination, "v/file.txt", b"second, longer version")
    assert second.status in ("uploaded", "new_version")
    info = destination.stat("v/file.txt")
    assert info is not None and info.size == len(b"second, longer version")
    assert read_back(destination, "v/file.txt") == b"second, longer version"
    assert len(list(destination.list("v"))) == 1


def test_list_is_recursive_sorted_and_scoped(destination: Destination) -> None:
    for path in ("r/2.txt", "r/1.txt", "r/sub/3.txt", "other/4.txt"):
        put_bytes(destination, path, path.encode())
    listed = sorted(f.path for f in destination.list("r"))
    assert listed == ["r/1.txt", "r/2.txt", "r/sub/3.txt"]
    assert {f.size for f in destination.list("r")} == {len(b"r/1.txt"), len(b"r/sub/3.txt")}


def test_list_of_missing_folder_is_empty(destination: Destination) -> None:
    assert list(destination.list("does/not/exist")) == []
    assert destination.stat("does/not/exist.txt") is None


def test_empty_file(destination: Destination) -> None:
    result = put_bytes(destination, "e/empty.txt", b"")
    assert result.size == 0 and result.sha1 == hashlib.sha1(b"").hexdigest()
    info = destination.stat("e/empty.txt")
    assert info is not None and info.size == 0


def test_delete_removes_and_tolerates_missing(destination: Destination) -> None:
    put_bytes(destination, "d/gone.txt", b"bye")
    destination.delete("d/gone.txt")
    assert destination.stat("d/gone.txt") is None
    destination.delete("d/gone.txt")
    destination.delete("never/was.txt")


def test_mkdirs_is_idempotent_and_nested(destination: Destination) -> None:
    destination.mkdirs("m/n/o")
    destination.mkdirs("m/n/o")
    destination.mkdirs("m/n")
    assert list(destination.list("m")) == []
    put_bytes(destination, "m/n/o/f.txt", b"ok")
    assert [f.path for f in destination.list("m/n")] == ["m/n/o/f.txt"]


def test_paths_cannot_escape_the_root(destination: Destination) -> None:
    with pytest.raises(ValueError, match=r"\.\."):
        put_bytes(destination, "../escape.txt", b"no")
    with pytest.raises(ValueError, match=r"\.\."):
        destination.stat("a/../../etc/passwd")


def test_short_source_leaves_no_visible_file(destination: Destination) -> None:
    with pytest.raises(OffsiteError):
        destination.put("s/short.bin", io.BytesIO(b"only ten b"), 100)
    assert destination.stat("s/short.bin") is None
    assert [f.path for f in destination.list("s") if not f.path.endswith("short.bin")] == []
    assert [f.path for f in destination.list("s")] == []


def test_concurrent_puts_into_a_missing_tree(destination: Destination) -> None:
    together(*[lambda i=i: put_bytes(destination, f"c/deep/tree/file{i}.txt", f"file {i}".encode()) for i in range(4)])
    assert sorted(f.path for f in destination.list("c")) == [f"c/deep/tree/file{i}.txt" for i in range(4)]


def test_multi_megabyte_file_round_trips(destination: Destination) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    result = put_bytes(destination, "big/blob.bin", data)
    assert result.sha1 == hashlib.sha1(data).hexdigest()
    assert read_back(destination, "big/blob.bin") == data


RESUME_SIZE = 3 * 8 * 1024 * 1024 + 12_345  # three of Box's 8 MiB parts and a bit; many SFTP chunks


def test_a_resumable_upload_continues_where_it_stopped(destination: Destination) -> None:
    """Each call works until its deadline (already past: one chunk), returns its Progress, and
    the next call continues from that state; no stored byte is sent twice; the file appears
    whole only at the end."""
    if not destination.abilities.resumable:
        assert not isinstance(destination, Resumable) or destination.abilities.resumable is False
        return
    assert isinstance(destination, Resumable)
    data = os.urandom(RESUME_SIZE)
    state, sent, calls = None, 0, 0
    while True:
        calls += 1
        assert calls < 200, "no progress"
        outcome = destination.put_resumable(
            "resume/big.bin", io.BytesIO(data), len(data), ledger=MemoryLedger(), resume=state, deadline=0.0
        )
        if isinstance(outcome, PutResult):
            break
        # each call moves on: it sends bytes, or (SFTP) proves more of the partial file read back
        assert isinstance(outcome, Progress) and 0 < outcome.bytes_done < len(data)
        assert outcome.bytes_sent > 0 or outcome.state != state
        sent += outcome.bytes_sent
        state = outcome.state
        assert destination.stat("resume/big.bin") is None  # not visible until complete
    assert calls >= 3
    assert outcome.status == "uploaded" and outcome.sha1 == hashlib.sha1(data).hexdigest()
    assert sent < len(data)  # the last call sent the rest: nothing was sent twice before it
    assert read_back(destination, "resume/big.bin") == data


def test_an_unprovable_resume_state_restarts_cleanly(destination: Destination) -> None:
    """A state whose stored bytes differ from the source is not trusted: the upload starts over
    (at once, or after one TransientError whose retry with the same state starts over)."""
    if not destination.abilities.resumable:
        return
    assert isinstance(destination, Resumable)
    data = os.urandom(RESUME_SIZE)
    first = destination.put_resumable("r2/a.bin", io.BytesIO(data), len(data), ledger=MemoryLedger(), deadline=0.0)
    assert isinstance(first, Progress)
    other = os.urandom(RESUME_SIZE)  # different bytes under the same checkpoint: the prefix does not match

    def attempt() -> PutResult | Progress:
        return destination.put_resumable(
            "r2/a.bin", io.BytesIO(other), len(other), ledger=MemoryLedger(), resume=first.state
        )

    try:
        done = attempt()
    except TransientError:
        done = attempt()
    assert isinstance(done, PutResult) and done.sha1 == hashlib.sha1(other).hexdigest()
    assert read_back(destination, "r2/a.bin") == other


def test_delete_folder_removes_the_tree_and_nothing_else(destination: Destination) -> None:
    for path in ("t/day/run1/a.bin", "t/day/run1/sub/b.bin", "t/day/run2/c.bin", "t/day/run10/d.bin"):
        put_bytes(destination, path, path.encode())
    destination.mkdirs("t/day/run1/empty")
    assert destination.delete_folder("t/day/run1") is True
    assert sorted(f.path for f in destination.list("t")) == ["t/day/run10/d.bin", "t/day/run2/c.bin"]
    assert list(destination.list("t/day/run1")) == []
    assert destination.stat("t/day/run1/a.bin") is None
    # gone for good: a new file there starts a fresh folder, and the old content does not come back
    put_bytes(destination, "t/day/run1/new.bin", b"new")
    assert [f.path for f in destination.list("t/day/run1")] == ["t/day/run1/new.bin"]


def test_delete_folder_tolerates_missing_and_refuses_the_root(destination: Destination) -> None:
    assert destination.delete_folder("never/was") is True
    put_bytes(destination, "keep/me.txt", b"x")
    with pytest.raises(ValueError, match="root"):
        destination.delete_folder("")
    with pytest.raises(ValueError, match=r"\.\."):
        destination.delete_folder("keep/../..")
    assert [f.path for f in destination.list("keep")] == ["keep/me.txt"]


def test_delete_folder_not_recursive_only_removes_an_empty_folder(destination: Destination) -> None:
    put_bytes(destination, "n/day/run/file.txt", b"x")
    assert destination.delete_folder("n/day", recursive=False) is False
    assert [f.path for f in destination.list("n")] == ["n/day/run/file.txt"]
    assert destination.delete_folder("n/day/run") is True
    assert destination.delete_folder("n/day", recursive=False) is True
    destination.mkdirs("n/day/again")  # a folder can be made where an emptied one was removed
    assert destination.delete_folder("n/day", recursive=False) is False  # an empty sub-folder counts
    assert destination.delete_folder("n/day/again", recursive=False) is True


def test_list_folders_names_the_immediate_subfolders_only(destination: Destination) -> None:
    """Retention walks a dataset table by table: one listing of one folder, names only, sorted."""
    put_bytes(destination, "lf/orders/20250101/run1/a.bin", b"a")
    put_bytes(destination, "lf/orders_eu/20250101/run1/b.bin", b"b")
    put_bytes(destination, "lf/customers/c.bin", b"c")
    put_bytes(destination, "lf/beside.bin", b"a file beside the folders")
    destination.mkdirs("lf/empty")
    assert destination.list_folders("lf") == ["customers", "empty", "orders", "orders_eu"]
    assert destination.list_folders("lf/orders") == ["20250101"]
    assert destination.list_folders("/lf/orders/20250101/") == ["run1"]
    assert destination.list_folders("lf/orders/20250101/run1") == []  # files only
    assert "lf" in destination.list_folders("")


def test_list_folders_of_a_missing_folder_is_empty(destination: Destination) -> None:
    assert destination.list_folders("never/was") == []
    put_bytes(destination, "lfm/x.bin", b"x")
    assert destination.list_folders("lfm/nothing") == []


def test_list_folders_of_a_listed_subfolder_follows_what_is_there_now(destination: Destination) -> None:
    """A backend may remember the subfolders a listing named (Box and Drive do, so retention's
    walk of a table's day folders costs one call each): a subfolder removed since, and one
    filled since, are still listed as they are now."""
    put_bytes(destination, "lfr/keep/run1/a.bin", b"a")
    put_bytes(destination, "lfr/gone/run1/b.bin", b"b")
    assert destination.list_folders("lfr") == ["gone", "keep"]
    assert destination.delete_folder("lfr/gone") is True
    put_bytes(destination, "lfr/keep/run2/c.bin", b"c")
    assert destination.list_folders("lfr/gone") == []
    assert destination.list_folders("lfr/keep") == ["run1", "run2"]
    assert destination.list_folders("lfr") == ["keep"]


def test_a_whole_file_answered_to_a_ranged_read_is_skipped_to_its_start() -> None:
    """A server may answer a ranged read with the whole file (200, not 206): Box and Drive then
    read past the first ``start`` bytes, so the caller gets what it asked for all the same."""
    from shared.destinations.base import range_header, skipped_to

    data = os.urandom(3 * 1024 * 1024 + 5)
    assert skipped_to(io.BytesIO(data), 2 * 1024 * 1024 + 1).read() == data[2 * 1024 * 1024 + 1 :]
    assert skipped_to(io.BytesIO(data), len(data) + 10).read() == b""  # past the end: nothing, not an error
    assert range_header(0) == {} and range_header(7) == {"Range": "bytes=7-"}
