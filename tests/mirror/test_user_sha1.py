"""Users write mirrored objects and tools copy metadata forward: an object's ``sha1`` metadata
is trusted only when offsite bound it to the generation's bytes."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable

from shared.destinations import factory
from shared.gcp import gcs
from tests.mirror.conftest import MirrorStack, sha1


def test_a_new_generation_carrying_the_old_sha1_metadata_is_delivered(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror", destinations=["box"])
    m.finalized(m.put("report.csv", b"version one"))
    carried = dict(m.stat("report.csv").metadata)  # what a tool copying metadata forward keeps
    m.finalized(gcs.write(m.bucket, "report.csv", b"version two", metadata=carried))  # same size
    assert m.copies("box") == {"report.csv": sha1(b"version two")}
    (result,) = m.reconcile(fix=False)
    assert result.status == "in_sync" and result.check == "sha1", result.reason


def test_a_users_own_sha1_metadata_is_replaced_by_the_bytes_sha1(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror", destinations=["box"])
    data = b"user object"
    theirs = base64.b64encode(hashlib.sha1(data).digest()).decode()  # the user's own convention
    m.finalized(gcs.write(m.bucket, "obj.bin", data, metadata={"sha1": theirs}))
    assert m.stat("obj.bin").metadata["sha1"] == sha1(data)
    (result,) = m.reconcile(fix=False)
    assert result.status == "in_sync" and result.check == "sha1", result.reason


def test_box_does_not_call_a_file_of_another_size_unchanged(mirror_factory: Callable[..., MirrorStack]) -> None:
    m = mirror_factory(destinations=["box"])
    with factory.opened("box", m.config) as box:
        box.put(f"{m.folder}/f.bin", io.BytesIO(b"old"), 3)
        result = box.put(f"{m.folder}/f.bin", io.BytesIO(b"longer bytes"), 12, sha1=sha1(b"old"))
    assert result.status != "unchanged"
    assert m.copies("box") == {"f.bin": sha1(b"longer bytes")}
