from __future__ import annotations

from pathlib import Path

import pytest

from shared.config_load import load_config, to_dict
from shared.errors import ConfigError
from shared.secrets import Secret, reset_cache
from tests.unit.config_files import MINIMAL, write

EXAMPLE = Path(__file__).resolve().parents[2] / "offsite.example.yaml"


def test_example_config_loads_with_seed_schedules() -> None:
    config = load_config(EXAMPLE, environ={})
    assert [d.schedule for d in config.datasets] == ["0 2 * * *", "0 3 * * 0", "0 4 * * 1", "0 5 1 * *"]
    assert config.destination_names() == ("box", "sftp:acme")
    assert config.expiration_days == 30
    assert config.export("product_data").file_name == "Product_{YYYYMMDD}-*.csv.gz"


def test_defaults_apply(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})
    partner = config.sftp_partner("acme")
    assert partner.port == 22 and partner.partial_suffix == ".partial" and partner.posix_rename
    assert config.verify.deadline_minutes == 120 and config.verify.self_heal
    assert config.datasets[0].format == "PARQUET"


def test_json_config_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, '{"project": "p", "bucket": "bkt"}', "c.json")
    assert load_config(path, environ={}).bucket == "bkt"


def test_invalid_cron_names_the_field_path(tmp_path: Path) -> None:
    text = MINIMAL + '  - name: a\n    schedule: "0 1 * * *"\n  - name: b\n    schedule: "61 * * * *"\n'
    with pytest.raises(
        ConfigError, match=r"^datasets\[2\]\.schedule: '61 \* \* \* \*' is not a valid cron expression$"
    ):
        load_config(write(tmp_path, text), environ={})


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("project: p1\nbucket: b\nbukcet: x\n", r"config: unknown key 'bukcet'"),
        ("bucket: bkt\n", r"project: required field is missing"),
        ("project: p\nbucket: bkt\nexpiration_days: soon\n", r"expiration_days: expected an integer, got 'soon'"),
        ("project: p\nbucket: Bad_Bucket!\n", r"bucket: 'Bad_Bucket!' is not a valid bucket name"),
        (
            "project: p\nbucket: bkt\ndatasets: [{name: s, format: XML}]\n",
            r"datasets\[0\]\.format: 'XML' is not a supported format",
        ),
        (
            "project: p\nbucket: bkt\ndatasets: [{name: s, destinations: [box]}]\n",
            r"datasets\[0\]\.destinations\[0\]: 'box' is not a configured destination",
        ),
        (
            "project: p\nbucket: bkt\nexports: [{name: e, sql: 'SELECT 1'}]\n",
            r"exports\[0\]\.sql: must contain the placeholder \{date\} \(the run's date\), or set snapshot: true",
        ),
        (
            "project: p\nbucket: bkt\nexports: [{name: e, sql: 'SELECT {date}', snapshot: true}]\n",
            r"exports\[0\]\.snapshot: true, but sql holds \{date\}: a snapshot reads no date",
        ),
        (
            "project: p\nbucket: bkt\npubsub: {max_delivery_attempts: 3}\n",
            r"pubsub\.max_delivery_attempts: 3 must be between 5 and 100",
        ),
        (
            "project: p\nbucket: bkt\ndatasets: [{name: s, time_zone: Mars/Base}]\n",
            r"datasets\[0\]\.time_zone: 'Mars/Base' is not a known time zone",
        ),
        (
            "project: p\nbucket: bkt\ningest: {sqlite_path: /x.db, dataset: app, time_zone: IST}\n",
            r"ingest\.time_zone: 'IST' is not a known time zone",
        ),
        (
            "project: p\nbucket: bkt\ndestinations: {sftp: {acme: {host: h, username: u, password: x}}}\n",
            r"destinations\.sftp\.acme: set known_hosts or host_key_fingerprint",
        ),
        (
            "project: p\nbucket: bkt\ndestinations: {sftp: {acme: {host: h, username: u, password: x,"
            " host_key_fingerprint: 'SHA256:x', ssh_client: openssh}}}\n",
            r"destinations\.sftp\.acme\.ssh_client: 'openssh' logs in with private_key only",
        ),
        (
            "project: p\nbucket: bkt\ndestinations: {box: {auth: {method: ccg, client_id: c}}}\n",
            r"destinations\.box\.auth\.client_secret: required when method is 'ccg'",
        ),
        ("- just\n- a list\n", r"top level must be a mapping"),
        ("project: [unclosed\n", r"is not valid YAML"),
    ],
)
def test_bad_config_errors_are_specific(tmp_path: Path, patch: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, patch), environ={})


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found; set OFFSITE_CONFIG"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_env_overrides_nested_fields(tmp_path: Path) -> None:
    env = {
        "OFFSITE__VERIFY__DEADLINE_MINUTES": "30",
        "OFFSITE__BUCKET": "other-bucket",
        "OFFSITE__DESTINATIONS__SFTP__ACME__PORT": "2222",
    }
    config = load_config(write(tmp_path, MINIMAL), environ=env)
    assert config.verify.deadline_minutes == 30
    assert config.bucket == "other-bucket"
    assert config.sftp_partner("acme").port == 2222


def test_env_override_with_bad_value_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"verify\.deadline_minutes: expected an integer, got 'soon'"):
        load_config(write(tmp_path, MINIMAL), environ={"OFFSITE__VERIFY__DEADLINE_MINUTES": "soon"})


def test_secrets_are_masked_everywhere(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})
    partner = config.sftp_partner("acme")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(to_dict(config))
    assert partner.password is not None and partner.password.reveal() == "hunter2"


def test_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reset_cache()
    monkeypatch.setenv("OFFSITE_TEST_TOKEN", "from-env\n")  # `export X="$(cat f)"` keeps none, `echo` pipes one
    (tmp_path / "tok").write_text("from-file\r\n")
    assert Secret("env:OFFSITE_TEST_TOKEN").reveal() == "from-env"
    assert Secret(f"file:{tmp_path / 'tok'}").reveal() == "from-file"
    assert repr(Secret("env:OFFSITE_TEST_TOKEN")) == "Secret(env:OFFSITE_TEST_TOKEN)"
    assert repr(Secret("literal-value")) == "Secret(***)"
    with pytest.raises(ConfigError, match=r"box\.token: environment variable 'OFFSITE_NOT_SET_X' is not set"):
        Secret("env:OFFSITE_NOT_SET_X", "box.token").reveal()
    with pytest.raises(ConfigError, match=r"is not of the form sm://projects/P/secrets/S/versions/V"):
        Secret("sm://projects/p/secrets/s", "alerts.slack_webhook_url").reveal()


def test_env_override_of_no_field_is_refused_naming_the_variable(tmp_path: Path) -> None:
    """A misspelt section was passed by in silence (a misspelt nested key was already an error)."""
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, MINIMAL), environ={"OFFSITE__EXPIRATION_DAY": "7"})
    assert str(refused.value).startswith("OFFSITE__EXPIRATION_DAY: 'expiration_day' is not a config field;")
    assert "expiration_days" in str(refused.value) and "verify" in str(refused.value)
    with pytest.raises(ConfigError, match=r"^OFFSITE__VERIFYY__DEADLINE_MINUTES: 'verifyy' is not a config field"):
        load_config(write(tmp_path, MINIMAL), environ={"OFFSITE__VERIFYY__DEADLINE_MINUTES": "7"})
    assert load_config(write(tmp_path, MINIMAL), environ={"offsite__expiration_days": "7"}).expiration_days == 7


@pytest.mark.parametrize("project", ["", "my project`x", "P1", "1st-project", "proj-", "p" * 31, "p1\n"])
def test_a_project_that_is_no_project_id_is_refused_at_load(tmp_path: Path, project: str) -> None:
    """An empty project used to load, and every export request then failed on a raw pydantic error."""
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, MINIMAL), environ={"OFFSITE__PROJECT": project})
    assert str(refused.value).startswith(f"project: {project!r} is not a Google Cloud project id")


@pytest.mark.parametrize("project", ["p1", "offsite-local", "example.com:my-project"])
def test_project_ids_including_domain_scoped_ones_load(tmp_path: Path, project: str) -> None:
    assert load_config(write(tmp_path, MINIMAL), environ={"OFFSITE__PROJECT": project}).project == project


def test_delivery_budget_must_leave_time_to_checkpoint_before_the_timeout(tmp_path: Path) -> None:
    """Past the delivery functions' 540 s timeout no checkpoint was ever saved; 60 s drain it."""
    assert (
        load_config(write(tmp_path, MINIMAL), environ={"OFFSITE__DELIVERY__BUDGET_S": "480"}).delivery.budget_s == 480
    )
    for value in ("481", "900"):
        with pytest.raises(ConfigError) as refused:
            load_config(write(tmp_path, MINIMAL), environ={"OFFSITE__DELIVERY__BUDGET_S": value})
        assert str(refused.value) == (
            f"delivery.budget_s: {value} s leaves less than 60 s before the delivery functions' 540 s timeout "
            "to checkpoint and report; expected at most 480"
        )


@pytest.mark.parametrize("prefix", ["", "/", "/exports", "a//b", "exports/../x", "ex ports"])
def test_an_export_prefix_that_is_no_object_folder_is_refused(tmp_path: Path, prefix: str) -> None:
    """An empty prefix used to load; runs were then written as "/sales/…", outside the IAM grants on "exports/"."""
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, MINIMAL), environ={"OFFSITE__EXPORT_PREFIX": prefix})
    assert str(refused.value).startswith(f"export_prefix: {prefix!r} is not an object prefix (expected folder names")


@pytest.mark.parametrize(("prefix", "loaded"), [("exports/", "exports"), ("backups/bq", "backups/bq")])
def test_an_export_prefix_loads_without_its_trailing_slash(tmp_path: Path, prefix: str, loaded: str) -> None:
    assert load_config(write(tmp_path, MINIMAL), environ={"OFFSITE__EXPORT_PREFIX": prefix}).export_prefix == loaded
