"""``offsite config import``: seed 003's JSON config and seed 000's dataset list → one offsite config.

The old systems' READMEs (seeds 000 and 003, kept in tests/data/legacy) are read where they hold
what is converted (seed 003's config example) and where they name resources that already exist
(buckets, secrets), so the example config and every imported config can be checked against them.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from offsite.cli import app
from shared.config import load_config
from shared.config.legacy import LEGACY_RESOURCES, legacy_collisions

REPO = Path(__file__).resolve().parents[2]
LEGACY = REPO / "tests" / "data" / "legacy"
EXAMPLE = REPO / "offsite.example.yaml"
runner = CliRunner()


def seed(number: str) -> str:
    name = {"000": "bq-to-box-sync", "003": "bq-sftp-export"}[number]
    return (LEGACY / f"{name}.README.md").read_text()


def seed_003_config() -> str:
    """The ``configs/exports.json`` example of seed 003, as its README shows it."""
    match = re.search(r"### Config File Example.*?```json\n(.*?)```", seed("003"), re.S)
    assert match, "seed 003 has no config example"
    return match.group(1)


def import_files(tmp_path: Path, *texts: tuple[str, str], args: tuple[str, ...] = ()) -> tuple[int, str, str]:
    paths = []
    for name, text in texts:
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    result = runner.invoke(app, ["config", "import", *paths, *args])
    return result.exit_code, result.stdout, result.stderr


def test_seed_003s_config_becomes_a_flat_sftp_partner_and_a_dated_export(tmp_path: Path) -> None:
    code, out, err = import_files(tmp_path, ("exports.json", seed_003_config()), args=("--project", "shop-1"))
    assert code == 0, err
    config = yaml.safe_load(out)
    export, snapshot = config["exports"]
    assert export == {
        "name": "product_data",
        "sql": "SELECT * FROM `project.dataset.products` WHERE DATE(created_at) = '{date}'",
        "schedule": "0 6 * * *",
        "date": "yesterday",
        "format": "CSV",
        "destinations": ["sftp:partner"],
    }
    partner = config["destinations"]["sftp"]["partner"]
    assert partner["host"] == "sftp.example.com" and partner["directory"] == "/uploads" and partner["flat"] is True
    assert partner["password"] == "sm://projects/shop-1/secrets/offsite-sftp-partner-password/versions/latest"
    assert "password" not in out.replace("-password/", "").replace("password:", "")  # the seed's value is not copied
    assert config["bucket"] == "shop-1-offsite-exports" and config["expiration_days"] == 30
    assert "mapped: " in err and "exports.product_data → exports: product_data" in err
    assert snapshot == {
        "name": "customer_data",
        "sql": "SELECT id, name, email FROM `project.dataset.customers`",
        "snapshot": True,
        "schedule": "0 6 * * *",
        "date": "yesterday",
        "format": "CSV",
        "destinations": ["sftp:partner"],
    }
    assert "exports.customer_data → exports: customer_data (snapshot: true: the query has no {date}" in err
    assert "gcs.bucket 'your-bucket-name' is the old service's bucket" in err
    assert "to do: secret offsite-sftp-partner-known-hosts: the old service pinned no host key" in err
    path = tmp_path / "offsite.yaml"
    path.write_text(out)
    loaded = load_config(path, environ={})
    assert loaded.export("product_data") is not None and loaded.export("product_data").days_back == 1  # type: ignore[union-attr]
    assert loaded.export("customer_data").snapshot is True  # type: ignore[union-attr]


def scheduler_job(job: str, dataset: str, *, in_body: bool = False) -> dict:
    target: dict = {
        "uri": f"https://bq-to-box-sync-499681702492.us-central1.run.app/sync/{dataset}",
        "httpMethod": "POST",
    }
    if in_body:
        target = {
            "uri": "https://bq-to-box-sync-499681702492.us-central1.run.app/sync",
            "body": base64.b64encode(json.dumps({"dataset": dataset}).encode()).decode(),
        }
    return {
        "name": f"projects/bqx-ml/locations/us-central1/jobs/{job}",
        "schedule": "0 2 * * *",
        "timeZone": "Etc/UTC",
        "httpTarget": target,
    }


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("datasets.txt", "# seed 000's jobs\nbqx_ml_v3_models 0 2 * * *\nbqx_ml_v3_features 0 3 * * 0\n"),
        ("datasets.yaml", "- {dataset: bqx_ml_v3_models, schedule: '0 2 * * *'}\n- bqx_ml_v3_features\n"),
        (
            "jobs.json",
            json.dumps(
                [
                    scheduler_job("bq-to-box-models", "bqx_ml_v3_models"),
                    scheduler_job("bq-to-box-features", "bqx_ml_v3_features", in_body=True),
                ]
            ),
        ),
    ],
)
def test_seed_000s_dataset_list_becomes_box_backups(tmp_path: Path, name: str, text: str) -> None:
    args = () if name == "jobs.json" else ("--project", "bqx-ml")
    code, out, err = import_files(tmp_path, (name, text), args=args)
    assert code == 0, err
    config = yaml.safe_load(out)
    assert [d["name"] for d in config["datasets"]] == ["bqx_ml_v3_models", "bqx_ml_v3_features"]
    assert config["datasets"][0]["schedule"] == "0 2 * * *" and config["datasets"][0]["destinations"] == ["box"]
    assert config["project"] == "bqx-ml" and config["bucket"] == "bqx-ml-offsite-exports"
    box = config["destinations"]["box"]
    assert box["auth"]["jwt_config"] == "sm://projects/bqx-ml/secrets/offsite-box-jwt-config/versions/latest"
    assert "--secret=oxo-box-jwt-config" in err  # how to copy the old secret into offsite's own
    assert not legacy_collisions(config)


def test_both_seeds_together_and_output_file(tmp_path: Path) -> None:
    out_path = tmp_path / "offsite.yaml"
    code, out, err = import_files(
        tmp_path,
        ("exports.json", seed_003_config()),
        ("datasets.txt", "bqx_ml_v3_models 0 2 * * *\n"),
        args=("--project", "bqx-ml", "--partner", "acme", "-o", str(out_path)),
    )
    assert code == 0, err
    assert out == "" and f"wrote {out_path}" in err
    config = load_config(out_path, environ={})
    assert [str(d) for d in config.destination_names()] == ["box", "sftp:acme"]
    again = runner.invoke(app, ["config", "import", str(tmp_path / "exports.json"), "-o", str(out_path)])
    assert again.exit_code == 2 and "exists; offsite never overwrites a config" in again.stderr


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ('{"hello": 1}', (), "not a bq-sftp-export config"),
        (
            seed_003_config(),
            ("--project", "p-1", "--bucket", "bqx-ml-models"),
            "bucket: 'bqx-ml-models' belongs to an old system",
        ),
        (seed_003_config(), ("--project", "p-1", "--partner", "Acme!"), "--partner: 'Acme!' must be lower-case"),
        ('{"sftp": {"host": "h"}, "exports": {}}', (), "--project: not given and no project found"),
        ('{"sftp": "h", "exports": {}}', ("--project", "p-1"), 'in.json: sftp: "h" is not an object'),
        ('{"sftp": {"port": "22x"}, "exports": {}}', ("--project", "p-1"), 'sftp.port: "22x" is not a whole number'),
        ('{"gcs": {"expiration_days": 1.5}, "exports": {}}', ("--project", "p-1"), "gcs.expiration_days: 1.5 is not"),
        # a JSON document cut short is said as such, not read as one dataset name per line
        (
            seed_003_config().rstrip().removesuffix("}"),
            ("--project", "p-1"),
            "in.json: not valid JSON (Expecting ',' delimiter: line ",
        ),
        ('[{"dataset": "a"},', ("--project", "p-1"), "in.json: not valid JSON (Expecting value: line 1 column 19"),
    ],
)
def test_bad_input_names_what_was_expected(tmp_path: Path, text: str, args: tuple[str, ...], message: str) -> None:
    code, _out, err = import_files(tmp_path, ("in.json", text), args=args)
    assert code == 2 and message in err


def test_legacy_names_are_the_ones_the_seeds_name() -> None:
    """Every bucket and secret the seeds name is known, so neither the example nor an import reuses one."""
    texts = seed("000") + seed("003")
    buckets = set(re.findall(r"gs://([a-z0-9][a-z0-9._-]+[a-z0-9])", texts)) | set(
        re.findall(r"\b(bqx-ml-[a-z]+)/ \(", texts)
    )
    buckets |= {json.loads(seed_003_config())["gcs"]["bucket"]}
    secrets = set(re.findall(r"\| `([a-z0-9-]+)` \| Box\.com JWT", texts))
    assert buckets and secrets
    assert buckets <= LEGACY_RESOURCES["bucket"] and secrets <= LEGACY_RESOURCES["secret"]


def test_the_example_config_reuses_no_name_of_the_old_systems() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text())
    assert legacy_collisions(raw) == []
    assert legacy_collisions({**raw, "bucket": "bqx-ml-exports"}) == ["bucket: 'bqx-ml-exports'"]
    load_config(EXAMPLE, environ={})


# The .env examples of the SQLite → BigQuery syncs' docs (their two variable spellings).
SYNC_ENV = """# BigQuery Configuration
GOOGLE_APPLICATION_CREDENTIALS=/path/to/service-account.json
BQ_PROJECT_NAME=learn-prod
BQ_DATASET_NAME=app_analytics
DB_FILE="backend/app.db"
BUGSNAG_API_KEY=abc123
"""
SYNC_ENV_002 = """BIGQUERY_PROJECT_ID=tracker-1
BIGQUERY_DATASET_ID=2024_jobs
export DB_FILE=backend/job_tracker.db  # Path to your SQLite database
"""


def test_the_sqlite_syncs_env_becomes_the_ingest_section_on_the_old_schedule(tmp_path: Path) -> None:
    code, out, err = import_files(tmp_path, ("app.env", SYNC_ENV))
    assert code == 0, err
    config = yaml.safe_load(out)
    assert config["project"] == "learn-prod" and config["bucket"] == "learn-prod-offsite-exports"
    assert config["ingest"] == {
        "sqlite_path": "backend/app.db",
        "dataset": "app_analytics",
        "exclude": ["bq_sync_tracking"],
        "schedule": "*/15 * * * *",
        "full_schedule": "30 7 * * *",
        "time_zone": "Asia/Kolkata",
    }
    assert "mapped: " in err and "→ ingest.dataset: app_analytics" in err
    assert (
        "not mapped: " in err and "GOOGLE_APPLICATION_CREDENTIALS: offsite uses Application Default Credentials" in err
    )
    assert "BUGSNAG_API_KEY" in err and "abc123" not in out
    path = tmp_path / "offsite.yaml"
    path.write_text(out)
    loaded = load_config(path, environ={})
    assert loaded.ingest is not None and loaded.ingest.exclude == ("bq_sync_tracking",)

    code, out, err = import_files(tmp_path, ("tracker.env", SYNC_ENV_002))
    assert code == 0, err
    ingest = yaml.safe_load(out)["ingest"]
    assert (ingest["sqlite_path"], ingest["dataset"]) == ("backend/job_tracker.db", "2024_jobs")


def test_an_env_without_db_file_or_dataset_says_what_to_set(tmp_path: Path) -> None:
    code, out, err = import_files(tmp_path, ("app.env", "BQ_PROJECT_NAME=p1\n"))
    assert code == 0, err
    assert yaml.safe_load(out)["ingest"]["dataset"] == "app_mirror"
    assert "to do: ingest.sqlite_path: " in err and "has no DB_FILE" in err
    assert "to do: ingest.dataset: " in err and "names no dataset" in err


# The collector job's variables, as its docs list them (SFTP → one Drive folder).
COLLECTOR_ENV = """TOAST_SFTP_HOSTNAME=s-123.server.transfer.us-east-1.amazonaws.com
TOAST_SFTP_USERNAME=reports
TOAST_SFTP_PRIVATE_KEY="-----BEGIN OPENSSH PRIVATE KEY-----"
TOAST_SFTP_EXPORT_ID=123456
GOOGLE_CLIENT_ID=1234.apps.googleusercontent.com
GOOGLE_CLIENT_SECRET=GOCSPX-secret
GOOGLE_REFRESH_TOKEN=1//refresh-secret
GOOGLE_DRIVE_FOLDER_ID=1AbCdEf
"""


def test_the_collectors_env_becomes_a_collect_job_into_the_drive_folder_itself(tmp_path: Path) -> None:
    code, out, err = import_files(tmp_path, ("collector.env", COLLECTOR_ENV), args=("--project", "shop-1"))
    assert code == 0, err
    config = yaml.safe_load(out)
    ref = "sm://projects/shop-1/secrets/{}/versions/latest".format
    assert config["collect"] == {
        "partners": {
            "toast": {
                "host": "s-123.server.transfer.us-east-1.amazonaws.com",
                "username": "reports",
                "known_hosts": ref("offsite-sftp-toast-known-hosts"),
                "private_key": ref("offsite-sftp-toast-private-key"),
            }
        },
        "jobs": [
            {
                "name": "toast",
                "partner": "toast",
                "directory": "/123456",
                "destinations": ["drive:toast"],
                "folder": "/",
                "schedule": "0 6 * * *",
                "time_zone": "America/New_York",
            }
        ],
    }
    assert config["destinations"]["drive"]["toast"] == {
        "folder_id": "1AbCdEf",
        "auth": {
            "method": "oauth",
            "client_id": "1234.apps.googleusercontent.com",
            "client_secret": ref("offsite-drive-toast-client-secret"),
            "refresh_token": ref("offsite-drive-toast-refresh-token"),
        },
    }
    for secret in ("GOCSPX-secret", "1//refresh-secret", "BEGIN OPENSSH"):
        assert secret not in out and secret not in err
    assert "to do: secret offsite-sftp-toast-known-hosts" in err and "calendar: copy the holidays" in err
    path = tmp_path / "offsite.yaml"
    path.write_text(out)
    (job,) = load_config(path, environ={}).collect.jobs
    assert job.target_path("sales.csv") == "sales.csv"  # straight into GOOGLE_DRIVE_FOLDER_ID, as before
