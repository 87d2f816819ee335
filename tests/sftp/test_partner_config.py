"""An SFTP partner's settings: a bad value is refused when the config loads, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config_load import load_config
from shared.errors import ConfigError
from tests.unit.config_files import write

PARTNER = "project: p\nbucket: bkt\ndestinations: {sftp: {acme: {host: h, username: u, password: x, "
PARTNER += "host_key_fingerprint: 'SHA256:x', connect_timeout_s: %s}}}\n"


@pytest.mark.parametrize(("value", "shown"), [("0", "0.0"), ("-5", "-5.0"), (".nan", "nan")])
def test_a_connect_timeout_of_no_time_is_refused_naming_the_field(tmp_path: Path, value: str, shown: str) -> None:
    """0 failed every connect at once (retried forever); a negative one was a bare ValueError."""
    with pytest.raises(
        ConfigError,
        match=rf"destinations\.sftp\.acme\.connect_timeout_s: {shown} must be a number of seconds more than 0",
    ):
        load_config(write(tmp_path, PARTNER % value), environ={})
