"""Drive destinations in the config: their credentials become secrets that only the functions
delivering to and verifying Drive (upload_box, verify) may read; plain values fail the plan."""

from __future__ import annotations

import yaml

from tests.infra.conftest import EXAMPLE_CONFIG

DRIVE = {
    "folder_id": "1AbCdEf",
    "auth": {
        "method": "oauth",
        "client_id": "123.apps.googleusercontent.com",
        "client_secret": "sm://projects/bqx-ml/secrets/drive-client-secret/versions/latest",
        "refresh_token": "sm://projects/bqx-ml/secrets/drive-refresh-token/versions/latest",
    },
}


def test_drive_credentials_are_read_by_the_functions_that_write_verify_or_restore_drive_only(infra) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["destinations"]["drive"] = {"reports": DRIVE}
    module = infra(yaml.safe_dump(config))
    assert {"drive-client-secret", "drive-refresh-token"} <= set(
        module.instances("google_secret_manager_secret", "credential")
    )
    readers = module.instances("google_secret_manager_secret_iam_member", "credential_reader")
    drive_readers = {key.split("/")[0] for key in readers if key.split("/")[1].startswith("drive-")}
    # collect copies to any destination; the restore drill reads copies back from any destination
    assert drive_readers == {"upload_box", "verify", "collect_copy", "restore_drill"}


def test_a_plain_drive_credential_fails_the_plan(infra) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["destinations"]["drive"] = {"reports": {**DRIVE, "auth": {**DRIVE["auth"], "refresh_token": "1//plain"}}}
    module = infra(yaml.safe_dump(config))
    assert module.local("plain_credentials") == ["destinations.drive.reports.auth.refresh_token"]
    (checks,) = module.preconditions("terraform_data", "config_checks").values()
    (failed,) = [message for ok, message in checks if not ok]
    assert "destinations.drive.reports.auth.refresh_token" in failed and "1//plain" not in failed
