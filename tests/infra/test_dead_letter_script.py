"""infra/scripts/attach-dead-letter.sh, run against a stand-in `gcloud` that records its calls.

The stand-in is a few lines of shell on PATH: it answers `eventarc triggers describe` with a
subscription name and `auth application-default print-access-token` with a token (unless
told there are no Application Default Credentials), and logs every invocation, so the test
sees exactly the commands the script would send to Google Cloud and with which credentials.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from tests.infra.conftest import INFRA

SCRIPT = INFRA / "scripts" / "attach-dead-letter.sh"

FAKE_GCLOUD = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$GCLOUD_LOG"
for arg in "$@"; do
  case "$arg" in
    --access-token-file=*) cp "${arg#--access-token-file=}" "$GCLOUD_LOG.token" ;;
  esac
done
if [[ "$1 $2 $3" == "auth application-default print-access-token" ]]; then
  [[ -n "${NO_ADC:-}" ]] && { echo "ERROR: no credentials" >&2; exit 1; }
  echo "adc-token"
  exit 0
fi
if [[ " $* " == *" eventarc triggers describe "* ]]; then
  echo "projects/p/subscriptions/eventarc-us-central1-upload-box-123-sub-456"
fi
if [[ " $* " == *" projects describe "* && -n "${DENY:-}" ]]; then
  echo "ERROR: permission denied" >&2
  exit 1
fi
"""

ENV = {
    "PROJECT": "p",
    "REGION": "us-central1",
    "TRIGGER": "projects/p/locations/us-central1/triggers/upload-box-123",
    "DEAD_LETTER_TOPIC": "projects/p/topics/upload-box-gcs-finalized-dlq",
    "MAX_DELIVERY_ATTEMPTS": "5",
    "MIN_RETRY_DELAY": "10s",
    "MAX_RETRY_DELAY": "600s",
    "ACK_DEADLINE": "600",
    "PUBSUB_AGENT": "serviceAccount:service-42@gcp-sa-pubsub.iam.gserviceaccount.com",
    "IMPERSONATE_SERVICE_ACCOUNT": "",
}


def _run(tmp_path: Path, *args: str, **overrides: str) -> tuple[subprocess.CompletedProcess, list[list[str]], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(FAKE_GCLOUD)
    gcloud.chmod(0o755)
    log = tmp_path / "gcloud.log"
    # No GOOGLE_* credentials of the machine running the tests leak in.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env = {**base, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GCLOUD_LOG": str(log), **ENV, **overrides}
    result = subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    calls = [shlex.split(line) for line in log.read_text().splitlines()] if log.exists() else []
    token = Path(f"{log}.token").read_text() if Path(f"{log}.token").exists() else ""
    return result, calls, token


def _token_file_flags(call: list[str]) -> list[str]:
    return [a for a in call if a.startswith("--access-token-file=")]


def test_script_sets_dead_letter_retry_and_ack_deadline_with_terraforms_credentials(tmp_path: Path) -> None:
    result, calls, token = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    adc, describe, grant, update = calls
    # Terraform's default credentials (ADC), not a separate gcloud login.
    assert adc == ["auth", "application-default", "print-access-token"]
    assert token == "adc-token\n"
    for call in (describe, grant, update):
        assert len(_token_file_flags(call)) == 1, call
        assert not any(a.startswith("--impersonate-service-account") for a in call)
    describe, grant, update = (c[1:] for c in (describe, grant, update))  # drop --access-token-file
    assert describe[:4] == ["eventarc", "triggers", "describe", "upload-box-123"]
    assert "--location=us-central1" in describe and "--project=p" in describe
    sub = "eventarc-us-central1-upload-box-123-sub-456"
    assert grant[:4] == ["pubsub", "subscriptions", "add-iam-policy-binding", sub]
    assert f"--member={ENV['PUBSUB_AGENT']}" in grant and "--role=roles/pubsub.subscriber" in grant
    assert update[:4] == ["pubsub", "subscriptions", "update", sub]
    for flag in (
        "--ack-deadline=600",
        "--dead-letter-topic=projects/p/topics/upload-box-gcs-finalized-dlq",
        "--max-delivery-attempts=5",
        "--min-retry-delay=10s",
        "--max-retry-delay=600s",
    ):
        assert flag in update


def test_script_uses_the_providers_access_token_and_impersonation(tmp_path: Path) -> None:
    result, calls, token = _run(
        tmp_path, GOOGLE_OAUTH_ACCESS_TOKEN="tf-token", IMPERSONATE_SERVICE_ACCOUNT="deployer@p.iam.gserviceaccount.com"
    )
    assert result.returncode == 0, result.stderr
    assert token == "tf-token"
    assert all(c[:2] != ["auth", "application-default"] for c in calls), "the given token is used as it is"
    for call in calls:
        assert "--impersonate-service-account=deployer@p.iam.gserviceaccount.com" in call


def test_check_mode_fails_up_front_with_a_clear_message_without_credentials(tmp_path: Path) -> None:
    result, calls, _ = _run(tmp_path, "--check", NO_ADC="1")
    assert result.returncode == 2
    assert "no credentials for gcloud" in result.stderr
    assert "gcloud auth application-default login" in result.stderr
    assert "attach_eventarc_dead_letters=false" in result.stderr
    assert calls == [["auth", "application-default", "print-access-token"]]


def test_check_mode_tries_the_credentials_on_the_project(tmp_path: Path) -> None:
    ok, calls, _ = _run(tmp_path, "--check")
    assert ok.returncode == 0, ok.stderr
    assert calls[-1][1:3] == ["projects", "describe"] and calls[-1][3] == "p"
    denied, _, _ = _run(tmp_path, "--check", DENY="1")
    assert denied.returncode == 1
    assert "cannot read project p" in denied.stderr


def test_script_without_gcloud_says_what_to_do(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT), "--check"],
        env={"PATH": str(empty), "PROJECT": "p"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "gcloud is not on PATH" in result.stderr and "no login needed" in result.stderr


def test_script_refuses_to_run_without_its_inputs(tmp_path: Path) -> None:
    result, calls, _ = _run(tmp_path, DEAD_LETTER_TOPIC="")
    assert result.returncode == 2
    assert "DEAD_LETTER_TOPIC is not set" in result.stderr
    assert calls == []
