"""The buckets[] config section: defaults, globs, and errors naming field, value and expectation."""

from __future__ import annotations

from typing import Any

import pytest

from shared.config import Config
from shared.config.load import from_dict
from shared.errors import ConfigError

BOX = {"box": {"auth": {"method": "developer_token", "developer_token": "t"}}}


def _config(buckets: list[dict[str, Any]], **extra: Any) -> Config:
    return from_dict(Config, {"project": "p", "bucket": "p-exports", "destinations": BOX, "buckets": buckets, **extra})


def test_defaults_are_seed_000s_tree_every_destination_and_keep() -> None:
    config = _config([{"name": "bqx-ml-models"}])
    mirror = config.mirror("bqx-ml-models")
    assert mirror is not None
    assert (mirror.folder, mirror.delete, mirror.destinations, mirror.schedule) == (
        "GCP/storage/bqx-ml-models",
        "keep",
        (),
        None,
    )
    assert config.mirror("other-bucket") is None


def test_include_and_exclude_globs() -> None:
    mirror = _config([{"name": "b-data", "include": "models/*, *.json", "exclude": ["models/tmp/*"]}]).buckets[0]
    assert mirror.include == ("models/*", "*.json")  # a comma-separated string works too (env overrides)
    assert mirror.selects("models/a/b.pt") and mirror.selects("x.json")
    assert not mirror.selects("models/tmp/x.pt") and not mirror.selects("notes.txt")
    assert not mirror.selects("models/")  # a folder placeholder is never an object to copy
    everything = _config([{"name": "b-data"}]).buckets[0]
    assert everything.selects("any/deep/ü name.bin")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "Bad_Bucket!"}, "buckets[0].name: 'Bad_Bucket!' is not a valid bucket name"),
        ({"name": "b-data", "delete": "sync"}, "buckets[0].delete: 'sync'"),
        ({"name": "b-data", "include": [" "]}, "buckets[0].include[0]: ' ' is an empty pattern"),
        ({"name": "b-data", "schedule": "61 * * * *"}, "buckets[0].schedule: '61 * * * *' is not a valid cron"),
        (
            {"name": "b-data", "destinations": ["sftp:nobody"]},
            "buckets[0].destinations[0]: 'sftp:nobody' is not a configured destination",
        ),
        ({"name": "b-data", "remote_folder": "../up"}, "buckets[0].remote_folder: '../up' must be a relative folder"),
        ({"name": "p-exports"}, "buckets[0].name: 'p-exports' is offsite's own exports or state bucket"),
        ({"name": "b-data", "colour": "red"}, "buckets[0]: unknown key 'colour'"),
    ],
)
def test_bad_entries_name_the_field_and_value(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config([entry])
    assert message in str(caught.value)


def test_a_bucket_listed_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"buckets\[1\]\.name: 'b-data' is listed twice"):
        _config([{"name": "b-data"}, {"name": "b-data"}])


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        (
            [{"name": "b-data", "remote_folder": ""}],
            "buckets[0].remote_folder: '' ('' for bucket 'b-data') is the destination's root; expected a folder of "
            "the bucket's own (default 'GCP/storage/{bucket}')",
        ),
        (
            [{"name": "b-data", "remote_folder": "GCP"}],
            "buckets[0].remote_folder: 'GCP' ('GCP' for bucket 'b-data') overlaps 'GCP/bigquery', the exports' tree",
        ),
        ([{"name": "b-data", "remote_folder": "GCP/exports/x"}], "overlaps 'GCP/exports', the exports' tree"),
        (
            [{"name": "b-one"}, {"name": "b-two", "remote_folder": "GCP/storage"}],
            "buckets[1].remote_folder: 'GCP/storage' ('GCP/storage' for bucket 'b-two') overlaps "
            "'GCP/storage/b-one', the folder of bucket 'b-one'; expected a folder of its own",
        ),
        (
            [{"name": "b-one", "remote_folder": "shared"}, {"name": "b-two", "remote_folder": "shared"}],
            "buckets[1].remote_folder: 'shared' ('shared' for bucket 'b-two') overlaps 'shared', the folder of bucket 'b-one'",
        ),
        (
            [{"name": "b-data", "remote_folder": "sales/models"}],
            "overlaps 'sales', the folder of dataset 'sales' at SFTP partners",
        ),
        (
            [{"name": "b-data", "remote_folder": "collect"}],
            "overlaps 'collect/toast', the folder of collect job 'toast'",
        ),
    ],
)
def test_a_folder_that_is_not_the_buckets_own_is_refused(buckets: list[dict[str, Any]], message: str) -> None:
    """A reconcile takes every file in the folder for the bucket's (delete: mirror deletes what no
    object holds), so it must not hold the exports, another bucket's copies or collected files."""
    others = {
        "datasets": [{"name": "sales"}],
        "collect": {"jobs": [{"name": "toast", "partner": "acme", "directory": "/out", "destinations": ["box"]}]},
    }
    with pytest.raises(ConfigError) as caught:
        _config(buckets, **others, **_acme())
    assert message in str(caught.value)


def test_folders_of_their_own_are_accepted() -> None:
    config = _config([{"name": "b-one"}, {"name": "b-two"}, {"name": "b-three", "remote_folder": "GCP/storage2"}])
    assert [b.folder for b in config.buckets] == ["GCP/storage/b-one", "GCP/storage/b-two", "GCP/storage2"]


def _acme() -> dict[str, Any]:
    """destinations with an SFTP partner 'acme' (the collect job reads from it)."""
    sftp = {"acme": {"host": "h", "username": "u", "password": "p", "host_key_fingerprint": "SHA256:" + "A" * 43}}
    return {"destinations": {**BOX, "sftp": sftp}}


def _root_collect(recursive: bool) -> dict[str, Any]:
    job = {"name": "toast", "partner": "acme", "directory": "/out", "destinations": ["box"], "folder": "/"}
    return {"collect": {"jobs": [{**job, "recursive": recursive}]}, **_acme()}


def test_a_collect_job_into_the_root_puts_files_directly_there() -> None:
    (job,) = _config([], **_root_collect(False)).collect.jobs
    assert (job.target_folder, job.target_path("daily.csv")) == ("", "daily.csv")
    (default,) = _config(
        [],
        **{
            **_root_collect(False),
            "collect": {"jobs": [{"name": "toast", "partner": "acme", "directory": "/out", "destinations": ["box"]}]},
        },
    ).collect.jobs
    assert (default.target_folder, default.target_path("daily.csv")) == ("collect/toast", "collect/toast/daily.csv")


def test_a_mirror_beside_a_root_collect_job_is_refused_only_when_the_job_makes_subfolders() -> None:
    """Files collected into the root stand beside a mirror's folder, never in it, unless the job is
    recursive: then a partner folder named like the mirror's would land among the bucket's copies."""
    assert [b.folder for b in _config([{"name": "b-one"}], **_root_collect(False)).buckets] == ["GCP/storage/b-one"]
    with pytest.raises(ConfigError) as caught:
        _config([{"name": "b-one"}], **_root_collect(True))
    assert "overlaps '', the root, where collect job 'toast' puts subfolders" in str(caught.value)
