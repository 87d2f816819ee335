"""An object deleted (``delete: mirror``) while its copy is written: its delete event finds no
copy yet, so the delivery removes the one it made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.destinations.box.destination import BoxDestination
from shared.gcp import gcs
from tests.mirror.conftest import MirrorStack


def test_an_object_deleted_during_its_copy_leaves_no_copy(
    mirror_factory: Callable[..., MirrorStack], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = mirror_factory(delete="mirror", destinations=["box"])
    info = m.put("doc.txt", b"to be deleted")
    upload = BoxDestination._put_whole

    def deleted_by_the_user_first(self: BoxDestination, *args: Any, **kwargs: Any) -> Any:
        """The bytes are read; the user deletes the object and its delete event runs now."""
        if gcs.stat(m.bucket, "doc.txt") is not None:
            m.deleted(m.remove("doc.txt"))
        return upload(self, *args, **kwargs)

    monkeypatch.setattr(BoxDestination, "_put_whole", deleted_by_the_user_first)
    m.finalized(info)
    assert gcs.stat(m.bucket, "doc.txt") is None
    assert m.copies("box") == {}
