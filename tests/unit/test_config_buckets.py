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
