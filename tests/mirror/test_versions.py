"""``buckets[].retention``: copies the mirror removes are kept in dated ``_offsite_versions/``
folders at Box and SFTP, the reconcile leaves that folder alone, and the config says what it
needs."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable

import pytest

from shared.config import Config
from shared.config_load import from_dict
from shared.destinations import factory
from shared.errors import ConfigError
from tests.mirror.conftest import DESTINATIONS, MirrorStack, sha1

NAME = "reports/q1 résumé.csv"
OAUTH = {"method": "oauth", "client_id": "c.apps.googleusercontent.com", "client_secret": "s", "refresh_token": "r"}


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def test_a_deleted_object_is_moved_to_the_dated_versions_folder_at_box_and_sftp(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror", retention={"daily": 3})
    m.finalized(m.put(NAME, b"quarter one " * 40))
    m.finalized(m.put("keep.txt", b"stays"))

    m.deleted(m.remove(NAME))

    version = f"_offsite_versions/{_today()}/{NAME}"
    for destination in DESTINATIONS:
        assert m.copies(destination) == {"keep.txt": sha1(b"stays"), version: sha1(b"quarter one " * 40)}
    assert m.sftp_path(version).read_bytes() == b"quarter one " * 40  # renamed on the server
    assert not m.sftp_path(NAME).exists()


def test_without_retention_a_deleted_object_is_gone(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory(delete="mirror")
    m.finalized(m.put(NAME, b"quarter one"))
    m.deleted(m.remove(NAME))
    for destination in DESTINATIONS:
        assert m.copies(destination) == {}


def test_the_reconcile_ignores_the_versions_folder_and_moves_extra_files_into_it(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror", retention={"daily": 3})
    m.finalized(m.put("a.txt", b"alpha"))
    m.finalized(m.put(NAME, b"old"))
    m.deleted(m.remove(NAME))  # a version in today's folder at both destinations

    found = {str(r.destination): r for r in m.reconcile(fix=False)}
    assert {d: (r.status, r.extra, r.missing) for d, r in found.items()} == {
        d: ("in_sync", [], []) for d in DESTINATIONS
    }

    # A file that is not in the bucket: extra, and with retention moved to the versions, not deleted.
    m.sftp_path("stray.log").write_bytes(b"not in the bucket")
    with factory.opened("box", m.config) as box:
        box.put(f"{m.folder}/stray.log", io.BytesIO(b"not in the bucket"), 17)
    found = {str(r.destination): r for r in m.reconcile()}
    assert {d: (r.status, r.extra) for d, r in found.items()} == {d: ("mismatch", ["stray.log"]) for d in DESTINATIONS}
    day = f"_offsite_versions/{_today()}"
    for destination in DESTINATIONS:
        assert m.copies(destination) == {
            "a.txt": sha1(b"alpha"),
            f"{day}/{NAME}": sha1(b"old"),
            f"{day}/stray.log": sha1(b"not in the bucket"),
        }
    assert {str(r.destination): r.status for r in m.reconcile(fix=False)} == dict.fromkeys(DESTINATIONS, "in_sync")


def test_the_versions_folder_is_never_deleted_even_without_retention(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror")  # retention removed after versions were kept
    m.finalized(m.put("a.txt", b"alpha"))
    kept = m.sftp_path("_offsite_versions/2025-01-02/old.txt")
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"an old version")

    found = {str(r.destination): r for r in m.reconcile()}

    assert {d: (r.status, r.extra) for d, r in found.items()} == {d: ("in_sync", []) for d in DESTINATIONS}
    assert kept.read_bytes() == b"an old version"


def test_an_object_under_the_reserved_name_is_not_mirrored(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory(delete="mirror", retention={"daily": 1})
    m.finalized(m.put("_offsite_versions/2025-01-01/x.txt", b"would collide"))
    m.finalized(m.put("a/_offsite_versions/x.txt", b"a deeper name is fine"))
    for destination in DESTINATIONS:
        assert m.copies(destination) == {"a/_offsite_versions/x.txt": sha1(b"a deeper name is fine")}


def _config(**entry: object) -> Config:
    return from_dict(
        Config,
        {
            "project": "p",
            "bucket": "exports-b",
            "destinations": {"drive": {"reports": {"folder_id": "1AbC", "auth": OAUTH}}},
            "buckets": [{"name": "my-data", **entry}],
        },
    )


def test_retention_needs_delete_mirror_and_says_so() -> None:
    with pytest.raises(
        ConfigError, match=r"buckets\[0\]\.retention: daily=7, monthly=0 needs 'delete: mirror' \(with delete: 'keep'"
    ):
        _config(retention={"daily": 7})
    with pytest.raises(ConfigError, match=r"buckets\[0\]\.retention\.daily: 0 must be at least 1"):
        _config(delete="mirror", retention={"daily": 0})
    mirror = _config(delete="mirror", retention={"daily": 7, "monthly": 12}).buckets[0]
    assert mirror.retention is not None and mirror.versions_folder == "GCP/storage/my-data/_offsite_versions"
