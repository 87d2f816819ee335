"""Box and Drive fold case, GCS does not: folders compared regardless of case in the config, and
the reconcile never deletes a copy a live object holds under another spelling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.config import Config
from shared.config.load import from_dict
from shared.errors import ConfigError
from tests.mirror.conftest import MirrorStack, sha1

BOX = {"box": {"auth": {"method": "developer_token", "developer_token": "t"}}}


def _config(buckets: list[dict[str, Any]]) -> Config:
    return from_dict(Config, {"project": "p", "bucket": "p-exports", "destinations": BOX, "buckets": buckets})


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        (
            [{"name": "b-data", "remote_folder": "gcp/bigquery"}],
            "buckets[0].remote_folder: 'gcp/bigquery' ('gcp/bigquery' for bucket 'b-data') overlaps "
            "'GCP/bigquery', the exports' tree at Box and Drive",
        ),
        ([{"name": "b-data", "remote_folder": "Gcp/Exports/x"}], "overlaps 'GCP/exports', the exports' tree"),
        (
            [{"name": "b-one", "remote_folder": "Shared"}, {"name": "b-two", "remote_folder": "shared/two"}],
            "buckets[1].remote_folder: 'shared/two' ('shared/two' for bucket 'b-two') overlaps 'Shared', the "
            "folder of bucket 'b-one'",
        ),
    ],
)
def test_a_folder_differing_only_in_case_from_a_taken_one_is_refused(
    buckets: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(buckets)
    assert message in str(caught.value)


def test_folders_differing_only_in_case_keep_both_copies_at_box_and_are_reported(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """``Data/a.txt`` and ``data/b.txt`` share one folder at Box: the reconcile must not delete
    either copy as extra, and says why the bucket cannot be in sync there."""
    m = mirror_factory(delete="mirror", destinations=["box"])
    m.finalized(m.put("Data/a.txt", b"aaa"))
    m.finalized(m.put("data/b.txt", b"bbb"))
    for _ in range(2):
        (result,) = m.reconcile()
        m.continuations()
        assert result.status == "mismatch" and result.extra == []
        assert "case conflict: 'Data/', 'data/' differ only in case, one path at box" in result.reason
    assert sorted(m.copies("box").values()) == sorted([sha1(b"aaa"), sha1(b"bbb")])
