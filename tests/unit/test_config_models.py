"""The pydantic config models: env overrides via pydantic-settings, error lines, docs, secret masking, typed ids."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from shared.config import (
    BoxAuth,
    BoxDestination,
    Config,
    SftpPartner,
    env_overrides,
    from_dict,
    load_config,
    partner_from,
    to_dict,
)
from shared.config.docs import field_docs
from shared.errors import ConfigError
from shared.ids import DestinationId
from shared.secrets import Secret
from tests.unit.config_files import MINIMAL, write

# ---- environment overrides (pydantic-settings' EnvSettingsSource) ------------------------


def test_env_overrides_are_case_insensitive_and_typed(tmp_path: Path) -> None:
    env = {
        "offsite__verify__self_heal": "false",
        "OFFSITE__ALERTS__MIN_INTERVAL_S": "5",
        "OFFSITE__DESTINATIONS__SFTP__ACME__FLAT": "true",
        "OFFSITE_CONFIG": "ignored.yaml",  # one underscore: not an override
        "HOME": "/root",
    }
    config = load_config(write(tmp_path), environ=env)
    assert config.verify.self_heal is False and config.alerts.min_interval_s == 5
    partner = config.sftp_partner("acme")
    assert partner.flat is True and partner.host == "sftp.example.com"  # merged with the file, not replacing it


@pytest.mark.parametrize("value", ["aes128-ctr, aes256-ctr", "[aes128-ctr, aes256-ctr]", '["aes128-ctr","aes256-ctr"]'])
def test_env_list_values_as_commas_yaml_or_json(tmp_path: Path, value: str) -> None:
    config = load_config(write(tmp_path), environ={"OFFSITE__DESTINATIONS__SFTP__ACME__CIPHERS": value})
    assert config.sftp_partner("acme").ciphers == ("aes128-ctr", "aes256-ctr")


def test_env_can_add_a_whole_partner_and_route_to_it(tmp_path: Path) -> None:
    env = {
        "OFFSITE__DESTINATIONS__SFTP__BETA": '{"host": "b", "username": "u", "password": "x", "known_hosts": "k"}',
        "OFFSITE__EXPORTS": '[{"name": "e", "sql": "SELECT {date}", "destinations": ["sftp:beta"]}]',
    }
    config = load_config(write(tmp_path), environ=env)
    assert config.destination_names() == ("sftp:acme", "sftp:beta")
    assert config.export("e").destinations == (DestinationId("sftp", "beta"),)


def test_env_overrides_helper_nests_by_double_underscore() -> None:
    assert env_overrides({"OFFSITE__VERIFY__DEADLINE_MINUTES": "30", "PATH": "/bin"}) == {
        "verify": {"deadline_minutes": "30"}
    }
    assert env_overrides({"PATH": "/bin"}) == {}


def test_env_override_errors_name_the_field_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^destinations\.sftp\.acme\.port: expected an integer, got 'ssh'$"):
        load_config(write(tmp_path), environ={"OFFSITE__DESTINATIONS__SFTP__ACME__PORT": "ssh"})
    with pytest.raises(
        ConfigError, match=r'OFFSITE__\* override: error parsing value for field "datasets".*expected JSON'
    ):
        load_config(write(tmp_path), environ={"OFFSITE__DATASETS": "[{name: x"})


# ---- error lines -------------------------------------------------------------------------


def test_every_problem_is_one_line_with_path_value_and_expectation(tmp_path: Path) -> None:
    text = MINIMAL + textwrap.dedent(
        """
          - name: sales
            schedule: "0 25 * * *"
            tables: {include: ["a;b"]}
            destinations: [box, "ftp:x"]
        pubsub: {minimum_backoff_s: 700}
        colour: red
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    lines = str(info.value).splitlines()
    assert "datasets[1].schedule: '0 25 * * *' is not a valid cron expression" in lines
    assert "datasets[1].tables.include[0]: 'a;b' is not a valid table id (ASCII letters, digits, '_', '-')" in lines
    assert any(
        line.startswith("datasets[1].destinations[1]: 'ftp:x' is not a destination name (expected one of box")
        for line in lines
    )
    assert any(line.startswith("config: unknown key 'colour' (known: alerts, bucket,") for line in lines)
    assert "pubsub: minimum_backoff_s=700, maximum_backoff_s=600; expected 0 <= minimum <= maximum <= 600" in lines
    assert len(lines) == 5  # Config's own cross-field checks (routes, duplicates) wait until its fields are valid


def test_cross_field_problems_are_reported_together(tmp_path: Path) -> None:
    text = MINIMAL + "  - name: sales\n    destinations: [box]\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    assert str(info.value).splitlines() == [
        "datasets[1].name: 'sales' is listed twice",
        "datasets[1].destinations[0]: 'box' is not a configured destination (configured: sftp:acme)",
    ]


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"verify": {"self_heal": "maybe"}}, "verify.self_heal: expected true or false, got 'maybe'"),
        (
            {"destinations": {"box": {"parallel_parts": 64}}},
            "destinations.box.parallel_parts: 64 must be between 1 and 8",
        ),
        ({"destinations": {"box": {}}}, "destinations.box.auth.jwt_config: required when method is 'jwt'"),
        (
            {"destinations": {"box": {"auth": {"method": "oauth"}}}},
            "destinations.box.auth.method: 'oauth' is not one of",
        ),
        ({"datasets": "sales"}, "datasets: expected a list, got 'sales'"),
        ({"verify": []}, "verify: expected a mapping, got []"),
        ({"alerts": {"slack_webhook_url": ["x"]}}, "alerts.slack_webhook_url: expected a secret string"),
        (
            {"destinations": {"sftp": {"Acme": {"host": "h", "username": "u", "password": "x", "known_hosts": "k"}}}},
            "destinations.sftp.Acme: partner name 'Acme' must be lower-case letters, digits, '-' or '_'",
        ),
        # names Google refuses at `terraform apply`, caught by `offsite config validate`
        (
            {"bucket": "google-ads-exports"},
            "bucket: 'google-ads-exports': GCS refuses bucket names beginning with 'goog'",
        ),
        ({"state_bucket": "192.168.5.4"}, "state_bucket: '192.168.5.4': GCS refuses bucket names in IP-address form"),
        (
            {"buckets": [{"name": "goog-models"}]},
            "buckets[0].name: 'goog-models': GCS refuses bucket names beginning with 'goog'",
        ),
        (
            {"alerts": {"slack_webhook_url": "sm://projects/p/secrets/ops.slack/versions/latest"}},
            "alerts.slack_webhook_url: 'sm://projects/p/secrets/ops.slack/versions/latest' is not "
            "sm://projects/P/secrets/S/versions/V with S of letters, digits, '-' and '_'",
        ),
    ],
)
def test_type_errors_read_like_the_hand_written_ones(raw: dict, line: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(Config, {"project": "p", "bucket": "bkt", **raw})
    assert any(problem.startswith(line) for problem in str(info.value).splitlines()), str(info.value)


def test_partner_from_names_where_the_options_came_from() -> None:
    with pytest.raises(ConfigError, match=r"^--host\.directory: 'up' must be an absolute path$"):
        partner_from(
            {"host": "h", "username": "u", "password": Secret("x"), "known_hosts": Secret("k"), "directory": "up"},
            "--host",
        )


# ---- models: immutable, hashable, secrets masked -----------------------------------------


def partner() -> SftpPartner:
    return SftpPartner(host="h", username="u", password=Secret("hunter2"), known_hosts=Secret("env:KNOWN"))


def test_models_are_frozen_and_hashable() -> None:
    a, b = partner(), partner()
    assert a == b and hash(a) == hash(b) and len({a: 1, b: 2}) == 1
    with pytest.raises(Exception, match="frozen"):
        a.port = 2222  # type: ignore[misc]
    box = BoxDestination(auth=BoxAuth(method="developer_token", developer_token=Secret("t")))
    assert hash(box) == hash(box.model_copy())
    assert a.model_copy(update={"port": 2222}).port == 2222 and a.port == 22


def test_secrets_are_masked_in_repr_and_model_dump() -> None:
    p = partner()
    assert "hunter2" not in repr(p) and "Secret(***)" in repr(p)
    dumped = p.model_dump()
    assert dumped["password"] == "***" and dumped["known_hosts"] == "env:KNOWN"
    assert "hunter2" not in p.model_dump_json()
    assert p.password is not None and p.password.reveal() == "hunter2"


def test_loaded_secrets_know_their_field_path(tmp_path: Path) -> None:
    text = MINIMAL.replace("password: hunter2", "password: env:OFFSITE_TEST_UNSET_PASSWORD")
    config = load_config(write(tmp_path, text), environ={})
    with pytest.raises(ConfigError, match=r"^destinations\.sftp\.acme\.password: environment variable"):
        config.sftp_partner("acme").password.reveal()  # type: ignore[union-attr]
    assert to_dict(config)["destinations"]["sftp"]["acme"]["password"] == "env:OFFSITE_TEST_UNSET_PASSWORD"


def test_config_show_data_is_plain_yaml_friendly(tmp_path: Path) -> None:
    data = to_dict(load_config(write(tmp_path), environ={}))
    assert data["datasets"][0]["destinations"] == ["sftp:acme"]
    assert type(data["datasets"][0]["destinations"][0]) is str
    assert data["destinations"]["sftp"]["acme"]["password"] == "***"


# ---- docs from the models ----------------------------------------------------------------


def test_docs_come_from_the_models_fields_and_descriptions() -> None:
    lines = field_docs(Config)
    for name, info in SftpPartner.model_fields.items():
        assert any(
            line.startswith(f"destinations.sftp.NAME.{name}") and line.endswith(info.description) for line in lines
        )
    assert (
        "datasets[].destinations (default: ()): Where files go: 'box', 'sftp:PARTNER'; empty = every destination."
        in lines
    )
    assert "destinations.box.auth.client_secret (secret): CCG client secret." in lines
    assert "project (required): Google Cloud project id." in lines
    assert all(": " in line and not line.endswith(": ") for line in lines)  # every field has help text


# ---- DestinationId ------------------------------------------------------------------------


def test_destination_id_is_parsed_once_and_stays_its_text() -> None:
    d = DestinationId.parse("sftp:acme")
    assert (d.kind, d.name) == ("sftp", "acme") and str(d) == "sftp:acme" and d == "sftp:acme"
    assert DestinationId.parse(d) is d and DestinationId("box") == DestinationId.parse("box")
    assert repr(d) == "'sftp:acme'" and hash(d) == hash("sftp:acme")
    again = pickle.loads(pickle.dumps(d))
    assert again == d and again.kind == "sftp" and again.name == "acme"
    with pytest.raises(ValueError, match=r"'ftp:x' is not a destination name \(expected one of box, memory"):
        DestinationId.parse("ftp:x")
    with pytest.raises(ValueError, match="must be lower-case"):
        DestinationId("Box")


def test_config_routes_are_destination_ids(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), environ={})
    (route,) = config.datasets[0].destinations
    assert isinstance(route, DestinationId) and route.kind == "sftp" and route.name == "acme"
    assert all(isinstance(d, DestinationId) for d in config.destination_names())
