"""``offsite mirror restore``: a mirrored bucket's objects back from Box or the SFTP server (the
bare stack's Box API server and OpenSSH), each checked; a damaged copy is never left restored."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from offsite.cli import app
from shared.gcp import clients, gcs
from tests.mirror.conftest import MirrorStack

runner = CliRunner()
BIG = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk of the resumable upload into GCS
OBJECTS = {"a.txt": b"alpha", "dir/\u00fc b.bin": BIG, "dir/sub/c.json": b'{"c": 1}'}


def _mirrored(m: MirrorStack) -> None:
    """Every object delivered to box and sftp:local, then the bucket emptied (no delete events:
    the copies stay, as when the bucket is lost)."""
    for name, data in OBJECTS.items():
        m.finalized(m.put(name, data))
    for name in OBJECTS:
        assert gcs.delete(m.bucket, name)


def _held(bucket: str) -> dict[str, str]:
    return {
        o.name: hashlib.sha1(gcs.read_bytes(bucket, o.name) or b"").hexdigest() for o in gcs.list_prefix(bucket, "")
    }


def _sha1s(objects: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha1(data).hexdigest() for name, data in objects.items()}


def test_a_lost_bucket_comes_back_from_box_checked_and_never_twice(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()
    _mirrored(m)
    dry = runner.invoke(app, ["mirror", "restore", m.bucket, "--from", "box", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert {(r["name"], r["status"], r["check"]) for r in json.loads(dry.stdout)} == {
        (name, "would_restore", "sha1") for name in OBJECTS
    }
    assert _held(m.bucket) == {}  # a dry run writes nothing

    done = runner.invoke(app, ["mirror", "restore", m.bucket, "--from", "box"])
    assert done.exit_code == 0, done.output
    assert f"from box into gs://{m.bucket}: 3 restored" in done.stdout
    assert _held(m.bucket) == _sha1s(OBJECTS)

    again = runner.invoke(app, ["mirror", "restore", m.bucket, "--from", "box", "--json"])
    assert again.exit_code == 0, again.output
    assert {r["status"] for r in json.loads(again.stdout)} == {"exists"}  # never replaced


def test_a_prefix_from_sftp_into_another_bucket_skips_kept_versions_and_partials(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """SFTP reports no hash: the size is the check. Retention's versions folder and an upload in
    progress (``.partial``) are not objects of the bucket."""
    m = mirror_factory()
    _mirrored(m)
    for stray in ("_offsite_versions/20250101/dir/old.txt", "dir/next.bin.partial"):
        path = m.sftp_path(stray)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not an object")
    other = f"restored-{uuid.uuid4().hex[:10]}"
    clients.storage_client().create_bucket(other)
    args = ["mirror", "restore", m.bucket, "--from", "sftp:local", "--to-bucket", other, "--prefix", "dir/"]
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert {(r["name"], r["status"], r["check"]) for r in rows} == {
        ("dir/\u00fc b.bin", "restored", "size"),
        ("dir/sub/c.json", "restored", "size"),
    }
    assert _held(other) == _sha1s({k: v for k, v in OBJECTS.items() if k.startswith("dir/")})
    assert _held(m.bucket) == {}


def _box_blob(m: MirrorStack, name: str) -> Path:
    """The Box API server's file on disk holding the current version of ``name``'s copy."""
    box = m.config.destinations.box
    assert box is not None and box.auth.developer_token is not None
    token = box.auth.developer_token.reveal()

    def get(path: str) -> dict:  # type: ignore[type-arg]
        request = urllib.request.Request(f"{box.base_url}/2.0{path}", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    from shared.destinations import factory

    with factory.opened("box", m.config) as dest:
        remote = dest.stat(f"{m.folder}/{name}")
    assert remote is not None and remote.remote_id
    version = int(get(f"/files/{remote.remote_id}?fields=file_version")["file_version"]["id"])
    return m.info.root / "box" / "blobs" / f"{version % 256:02x}" / str(version)


def test_a_copy_damaged_at_rest_is_not_left_restored(mirror_factory: Callable[..., MirrorStack]) -> None:
    """Bit rot in Box's stored bytes: same size, but not the SHA-1 Box lists. The object written
    is deleted again, the others are restored, and the command exits 1 naming it."""
    m = mirror_factory()
    _mirrored(m)
    blob = _box_blob(m, "dir/\u00fc b.bin")
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    out = runner.invoke(app, ["mirror", "restore", m.bucket, "--from", "box"])
    assert out.exit_code == 1, out.output
    lines = out.stdout.splitlines()
    [damaged] = [line for line in lines if line.startswith("dir/\u00fc b.bin")]
    assert "damaged" in damaged and "sha1" in damaged and "the destination says" in damaged
    assert f"from box into gs://{m.bucket}: 1 damaged, 2 restored" in out.stdout
    assert _held(m.bucket) == _sha1s({k: v for k, v in OBJECTS.items() if k != "dir/\u00fc b.bin"})


def test_refusals_name_the_option(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory()
    own = runner.invoke(app, ["mirror", "restore", m.bucket, "--from", "box", "--to-bucket", m.config.bucket])
    assert own.exit_code == 2 and "is offsite's own bucket" in own.stderr
    stranger = runner.invoke(app, ["mirror", "restore", m.bucket, "--from", "sftp:nobody"])
    assert stranger.exit_code == 2 and "'sftp:nobody'" in stranger.stderr
    missing = runner.invoke(app, ["mirror", "restore", m.bucket])
    assert missing.exit_code == 2 and "--from" in missing.output


def test_an_object_deleted_in_the_bucket_comes_back_from_the_days_versions(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """With retention, the mirror moves a deleted object's copy to _offsite_versions/DAY/: the live
    restore does not bring it back, --versions DAY does, under its own name, checked."""
    m = mirror_factory(delete="mirror", retention={"daily": 3})
    for name, data in OBJECTS.items():
        m.finalized(m.put(name, data))
    lost = "dir/\u00fc b.bin"
    m.deleted(m.remove(lost))  # by mistake
    day = dt.datetime.now(dt.UTC).date().isoformat()  # the UTC day of the move
    live = json.loads(
        runner.invoke(app, ["mirror", "restore", m.bucket, "--from", "box", "--dry-run", "--json"]).stdout
    )
    assert {r["name"]: r["status"] for r in live} == {"a.txt": "exists", "dir/sub/c.json": "exists"}
    for source in ("box", "sftp:local"):
        args = ["mirror", "restore", m.bucket, "--from", source, "--versions", day, "--json"]
        out = runner.invoke(app, args)
        assert out.exit_code == 0, out.output
        [row] = json.loads(out.stdout)
        assert row["name"] == lost and row["path"].endswith(f"/_offsite_versions/{day}/{lost}")
        assert row["status"] == ("restored" if source == "box" else "exists")  # box brought it back first
    assert hashlib.sha1(gcs.read_bytes(m.bucket, lost) or b"").hexdigest() == hashlib.sha1(BIG).hexdigest()
    bad = runner.invoke(app, ["mirror", "restore", m.bucket, "--from", "box", "--versions", "yesterday"])
    assert bad.exit_code == 2 and "--versions: 'yesterday' is not a day; expected YYYY-MM-DD" in bad.stderr


def test_a_copy_that_cannot_be_read_stops_the_restore_and_a_second_run_finishes_it(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """Parallel workers (each on its own SFTP session): the first failure stops them and exits 1
    naming it; what was restored stays, and the run again restores only the rest."""
    m = mirror_factory()
    _mirrored(m)
    unreadable = m.sftp_path("a.txt")
    unreadable.chmod(0)
    try:
        failed = runner.invoke(app, ["mirror", "restore", m.bucket, "--from", "sftp:local", "--workers", "3"])
        assert failed.exit_code == 1, failed.output
        assert "error: sftp:local: opening: permission denied on " in failed.stderr and "a.txt" in failed.stderr
        assert "a.txt" not in _held(m.bucket)
        # what it did before it stopped is said (each worker stops after its file: up to two others)
        held = _held(m.bucket)
        said = f"{len(held)} restored" if held else "nothing"
        assert f"before it stopped from sftp:local into gs://{m.bucket}: {said}" in failed.stdout
    finally:
        unreadable.chmod(0o644)
    again = runner.invoke(app, ["mirror", "restore", m.bucket, "--from", "sftp:local", "--json", "--workers", "1"])
    assert again.exit_code == 0, again.output
    statuses = {r["name"]: r["status"] for r in json.loads(again.stdout)}
    assert statuses["a.txt"] == "restored" and set(statuses.values()) <= {"restored", "exists"}
    assert _held(m.bucket) == _sha1s(OBJECTS)
