"""infra/scripts/attach-dead-letter.sh, run against a stand-in `gcloud` that records its calls.

The stand-in is a few lines of shell on PATH: it answers `eventarc triggers describe` with a
subscription name and logs every invocation, so the test sees exactly the commands the
script would send to Google Cloud.
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
if [[ "$1 $2 $3" == "eventarc triggers describe" ]]; then
  echo "projects/p/subscriptions/eventarc-us-central1-upload-box-123-sub-456"
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
    "PUBSUB_AGENT": "serviceAccount:service-42@gcp-sa-pubsub.iam.gserviceaccount.com",
}


def _run(tmp_path: Path, **overrides: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(FAKE_GCLOUD)
    gcloud.chmod(0o755)
    log = tmp_path / "gcloud.log"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "GCLOUD_LOG": str(log), **ENV, **overrides}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)
    calls = [shlex.split(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def test_script_finds_the_eventarc_subscription_and_attaches_the_dead_letter_topic(tmp_path: Path) -> None:
    result, calls = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    describe, grant, update = calls
    assert describe[:4] == ["eventarc", "triggers", "describe", "upload-box-123"]
    assert "--location=us-central1" in describe and "--project=p" in describe
    sub = "eventarc-us-central1-upload-box-123-sub-456"
    assert grant[:4] == ["pubsub", "subscriptions", "add-iam-policy-binding", sub]
    assert f"--member={ENV['PUBSUB_AGENT']}" in grant and "--role=roles/pubsub.subscriber" in grant
    assert update[:4] == ["pubsub", "subscriptions", "update", sub]
    for flag in (
        "--dead-letter-topic=projects/p/topics/upload-box-gcs-finalized-dlq",
        "--max-delivery-attempts=5",
        "--min-retry-delay=10s",
        "--max-retry-delay=600s",
    ):
        assert flag in update


def test_script_refuses_to_run_without_its_inputs(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, DEAD_LETTER_TOPIC="")
    assert result.returncode == 2
    assert "DEAD_LETTER_TOPIC is not set" in result.stderr
    assert calls == []
