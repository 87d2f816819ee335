"""destinations.box settings: a bad value is refused when the config loads, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config_load import load_config
from shared.errors import ConfigError
from tests.unit.config_files import write

BOX = "project: p\nbucket: bkt\ndestinations: {box: {root_folder_id: '1', timeout_s: %s, "
BOX += "auth: {method: developer_token, developer_token: t}}}\n"


@pytest.mark.parametrize(("value", "shown"), [("0", "0.0"), ("-5", "-5.0"), (".nan", "nan")])
def test_a_request_timeout_of_no_time_is_refused_naming_the_field(tmp_path: Path, value: str, shown: str) -> None:
    """It was accepted, then every Box request raised requests' ValueError (retried forever)."""
    with pytest.raises(
        ConfigError, match=rf"destinations\.box\.timeout_s: {shown} must be a number of seconds more than 0"
    ):
        load_config(write(tmp_path, BOX % value), environ={})


def test_a_positive_request_timeout_is_taken(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BOX % "2.5"), environ={})
    assert config.destinations.box is not None and config.destinations.box.timeout_s == 2.5
