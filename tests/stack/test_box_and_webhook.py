"""The Box API server and the Slack webhook sink of the stack, through real clients."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from devstack.state import StackInfo
from shared.config_load import load_config


def test_box_sdk_lists_the_root_folder(bare_stack: StackInfo) -> None:
    from box_sdk_gen import BaseUrls, BoxClient, BoxDeveloperTokenAuth

    box = bare_stack.box
    client = BoxClient(auth=BoxDeveloperTokenAuth(token=box.developer_token)).with_custom_base_urls(
        BaseUrls(base_url=box.base_url, upload_url=box.upload_url, oauth_2_url=box.oauth_url)
    )
    items = client.folders.get_folder_items("0")
    assert items.entries is not None
    assert client.folders.get_folder_by_id("0").id == "0"


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_webhook_sink_records_alerts(bare_stack: StackInfo) -> None:
    config = load_config(bare_stack.config_path, environ={})
    url = config.alerts.slack_webhook_url.reveal()
    assert url == bare_stack.webhook_url
    marker = {"text": "run r1 mismatch", "blocks": [{"type": "section"}]}
    assert _post(url, json.dumps(marker).encode()) == (200, b"ok")
    assert _post(url, b"not json")[0] == 400
    with urllib.request.urlopen(bare_stack.webhook_messages_url, timeout=10) as resp:
        assert marker in json.loads(resp.read())
    lines = [json.loads(line) for line in bare_stack.alerts_file.read_text().splitlines()]
    assert marker in lines


def test_generated_config(bare_stack: StackInfo) -> None:
    config = load_config(bare_stack.config_path, environ={})
    assert (config.project, config.bucket, config.shard_size_bytes) == ("offsite-local", "offsite-exports", 4_000_000)
    assert config.dataset("sales").destinations == ("box", "sftp:local")
    assert config.export("orders_daily").destinations == ("sftp:local",)
    assert "`offsite-local.sales.orders`" in config.export("orders_daily").sql
    partner = config.sftp_partner("local")
    assert (partner.port, partner.username, partner.directory) == (
        bare_stack.sftp.port,
        bare_stack.sftp.username,
        str(bare_stack.sftp.directory),
    )
    assert partner.private_key.reveal() == bare_stack.sftp.key_path.read_text().rstrip("\n")
    assert partner.known_hosts.reveal() == bare_stack.sftp.known_hosts_path.read_text().rstrip("\n")
    box = config.destinations.box
    assert (box.base_url, box.upload_url, box.oauth_url) == (
        bare_stack.box.base_url,
        bare_stack.box.upload_url,
        bare_stack.box.oauth_url,
    )
    assert box.auth.developer_token.reveal() == bare_stack.box.developer_token
    assert (config.pubsub.max_delivery_attempts, config.pubsub.minimum_backoff_s, config.pubsub.maximum_backoff_s) == (
        5,
        1,
        10,
    )


@pytest.mark.parametrize(
    "key",
    [
        "PUBSUB_EMULATOR_HOST",
        "STORAGE_EMULATOR_HOST",
        "GOOGLE_CLOUD_PROJECT",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB",
        "CLOUDSDK_AUTH_DISABLE_CREDENTIALS",
        "CLOUDSDK_CORE_PROJECT",
        "OFFSITE_CONFIG",
        "OFFSITE_BIGQUERY_ENDPOINT",
        "OFFSITE_STACK",
        "OFFSITE_LOG_FORMAT",
    ],
)
def test_env_contract(bare_stack: StackInfo, key: str) -> None:
    assert bare_stack.env[key]
    assert f"export {key}=" in bare_stack.env_file.read_text()
