"""``datasets[].restore_drill``: typed, with errors naming the field, the value and what was expected."""

from __future__ import annotations

from typing import Any

import pytest

from shared.config import Config
from shared.config.docs import field_docs
from shared.config.load import from_dict
from shared.config.restore_drill import drill_source
from shared.errors import ConfigError

SFTP = {"acme": {"host": "h", "username": "u", "password": "x", "known_hosts": "k"}}


def config(drill: dict[str, Any], destinations: list[str] | None = None) -> Config:
    dataset: dict[str, Any] = {"name": "sales", "restore_drill": drill}
    if destinations is not None:
        dataset["destinations"] = destinations
    return from_dict(Config, {"project": "p", "bucket": "bkt", "destinations": {"sftp": SFTP}, "datasets": [dataset]})


def test_a_drill_reads_from_the_datasets_first_destination_by_default() -> None:
    cfg = config({"schedule": "0 5 * * 1", "to": "scratch"}, ["sftp:acme"])
    [entry] = cfg.datasets
    drill = entry.restore_drill
    assert drill is not None and (drill.sample, drill.expiration_hours, drill.from_) == (1, 24, None)
    assert drill.scratch("p") == "p.scratch" and drill_source(drill, entry.destinations, ()) == "sftp:acme"
    other = config({"schedule": "0 5 * * 1", "to": "other-proj.drills", "from": "sftp:acme", "sample": 3})
    assert other.datasets[0].restore_drill is not None
    assert other.datasets[0].restore_drill.scratch("p") == "other-proj.drills"
    assert any(line.startswith("datasets[].restore_drill.from:") for line in field_docs())


@pytest.mark.parametrize(
    ("drill", "line"),
    [
        ({"to": "scratch"}, "datasets[0].restore_drill.schedule: "),
        ({"schedule": "0 5 * * 1", "to": "a.b.c"}, "datasets[0].restore_drill.to: 'a.b.c' is not a dataset"),
        (
            {"schedule": "0 5 * * 1", "to": "x", "sample": 0},
            "datasets[0].restore_drill.sample: 0 must be between 1 and 20",
        ),
        (
            {"schedule": "0 5 * * 1", "to": "x", "from": "box"},
            "datasets[0].restore_drill.from: 'box' is not a configured destination (configured: sftp:acme)",
        ),
        ({"schedule": "0 5 * * 1", "to": "sales"}, "datasets[0].restore_drill.to: 'sales' is the exported dataset"),
        ({"schedule": "0 5 * * 1", "to": "x", "every": 2}, "datasets[0].restore_drill: unknown key 'every'"),
    ],
)
def test_bad_drills_are_named(drill: dict[str, Any], line: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(drill)
    assert any(problem.startswith(line) for problem in str(info.value).splitlines()), str(info.value)


def test_a_dumped_config_names_the_field_from_and_loads_again() -> None:
    from shared.config.load import to_dict

    cfg = config({"schedule": "0 5 * * 1", "to": "scratch", "from": "sftp:acme"})
    dumped = to_dict(cfg)
    assert dumped["datasets"][0]["restore_drill"]["from"] == "sftp:acme"
    assert "from_" not in dumped["datasets"][0]["restore_drill"]
    assert from_dict(Config, dumped).datasets[0].restore_drill == cfg.datasets[0].restore_drill
    with pytest.raises(ConfigError) as caught:
        config({"schedule": "0 5 * * 1", "to": "scratch", "form": "box"})
    assert "unknown key 'form' (known: expiration_hours, from, sample, schedule, time_zone, to)" in str(caught.value)
