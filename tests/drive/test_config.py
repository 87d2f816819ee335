"""The destinations.drive section: what it accepts, and errors that name the field and value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.config import Config
from shared.config_load import from_dict
from shared.destinations import factory
from shared.destinations.drive.destination import DriveDestination
from shared.errors import ConfigError
from shared.ids import DestinationId

OAUTH = {"method": "oauth", "client_id": "c.apps.googleusercontent.com", "client_secret": "s", "refresh_token": "r"}


def config(drive: dict[str, Any], **extra: Any) -> Config:
    return from_dict(Config, {"project": "p", "bucket": "exports-b", "destinations": {"drive": drive}, **extra})


def test_a_drive_folder_is_a_routable_destination() -> None:
    loaded = config(
        {"reports": {"folder_id": "1AbC", "auth": OAUTH}},
        datasets=[{"name": "sales", "destinations": ["drive:reports"]}],
    )
    assert DestinationId("drive", "reports") in loaded.destination_names()
    with factory.opened("drive:reports", loaded) as opened:
        assert isinstance(opened, DriveDestination) and opened.name == "drive:reports"
        assert opened.abilities.hashes == {"sha1"} and opened.abilities.resumable and opened.abilities.atomic_put


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        (
            {"auth": {"method": "oauth", "client_id": "c", "client_secret": "s"}},
            r"destinations\.drive\.reports\.auth\.refresh_token: required when method is 'oauth'",
        ),
        (
            {"auth": {"method": "service_account"}},
            r"destinations\.drive\.reports\.auth\.service_account_key: required when method is 'service_account'",
        ),
        (
            {"auth": OAUTH, "chunk_size_bytes": 1_000_000},
            r"destinations\.drive\.reports\.chunk_size_bytes: 1000000 is not a multiple of 262144",
        ),
        ({"auth": OAUTH, "folder_id": "a/b"}, r"destinations\.drive\.reports\.folder_id: 'a/b' is not a Drive id"),
    ],
)
def test_bad_values_are_named(folder: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config({"reports": folder})


def test_a_route_to_an_unconfigured_drive_folder_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'drive:other' is not a configured destination"):
        config({"reports": {"auth": OAUTH}}, datasets=[{"name": "sales", "destinations": ["drive:other"]}])


@pytest.mark.parametrize(
    "key",
    ["nope", json.dumps(json.dumps({"type": "service_account"})), "[]"],
    ids=["not-json", "json-encoded-twice", "a-list"],
)
def test_a_service_account_key_that_is_not_a_json_object_names_the_field(key: str) -> None:
    """Encoded twice (Terraform ``jsonencode(file(...))``) or a list, the key made google-auth
    raise AttributeError: retried until dead-lettered, naming nothing."""
    loaded = config(
        {"team": {"shared_drive_id": "0AX", "auth": {"method": "service_account", "service_account_key": key}}}
    )
    with pytest.raises(
        ConfigError, match=r"destinations\.drive\.team\.auth\.service_account_key: not a service account JSON key"
    ):
        factory.open_destination("drive:team", loaded)


@pytest.mark.parametrize("timeout", [0, -5, float("nan")], ids=["zero", "negative", "nan"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(timeout: float) -> None:
    """Before: accepted, then every request died of requests' bare ValueError ("Invalid timeout"),
    retried until dead-lettered, naming no field."""
    with pytest.raises(
        ConfigError, match=r"destinations\.drive\.reports\.timeout_s: .* must be a number of seconds more than 0"
    ):
        config({"reports": {"auth": OAUTH, "timeout_s": timeout}})
