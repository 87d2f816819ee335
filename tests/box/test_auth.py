"""Box authentication against the local server's token endpoint: JWT (seed 000's app config),
client credentials, developer token; failures are permanent with a clear message; an expired
token is refreshed once however many requests notice it."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest

from devstack.boxapi import BoxApiServer
from shared.config import BoxAuth, Destinations
from shared.destinations.box.destination import BoxDestination
from shared.destinations.box.http import BoxHttp
from shared.errors import ConfigError, PermanentError
from shared.secrets import Secret
from tests.box.pipeline import Pipeline
from tests.box.support import box_settings
from tests.box_jwt import jwt_app_config, rsa_key_pair
from tests.threads import together

ENTERPRISE = "900000001"  # the server's default enterprise of registered apps


@pytest.fixture(scope="module")
def jwt_app(box_server: BoxApiServer) -> dict:
    """A Box platform app registered with a public key; its JSON config as the Developer Console gives it."""
    client_id, secret, kid = f"app{uuid.uuid4().hex[:10]}", uuid.uuid4().hex, "key1"
    private, public = rsa_key_pair(b"correct horse")
    box_server.register_app(client_id, secret, public_keys={kid: public})
    return jwt_app_config(client_id, secret, kid, private, "correct horse", ENTERPRISE)


def jwt_auth(tmp_path: Path, config: dict) -> BoxAuth:
    path = tmp_path / f"box-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(config))
    return BoxAuth(method="jwt", jwt_config=Secret(f"file:{path}", "destinations.box.auth.jwt_config"))


def service_account_root(box_server: BoxApiServer, auth: BoxAuth) -> str:
    """A fresh folder owned by the app's service account (its own tree, as in Box)."""
    dest = BoxDestination(box_settings(box_server, "0", auth=auth))
    name = f"sa-{uuid.uuid4().hex[:12]}"
    return dest.folders.create("0", name, name)


def with_box(pipeline: Pipeline, box: object) -> Pipeline:
    pipeline.config = pipeline.config.model_copy(update={"destinations": Destinations(box=box)})
    return pipeline


def test_jwt_app_config_delivers(pipeline: Pipeline, box_server: BoxApiServer, jwt_app: dict, tmp_path: Path) -> None:
    auth = jwt_auth(tmp_path, jwt_app)
    with_box(pipeline, box_settings(box_server, service_account_root(box_server, auth), auth=auth))
    run = pipeline.start_run()
    item = pipeline.put(run.prefix + "orders_20250108-000000000000.parquet", b"jwt" * 1000)
    pipeline.deliver(item)
    (remote,) = pipeline.box().list("")
    assert remote.sha1 == item.sha1
    assert pipeline.box_server.requests("oauth_token")["statuses"]["oauth_token"].get("200", 0) >= 1


def test_ccg_delivers(box_server: BoxApiServer) -> None:
    auth = BoxAuth(
        method="ccg",
        client_id=box_server.client_id,
        client_secret=Secret(box_server.client_secret),
        subject_type="enterprise",
        subject_id=ENTERPRISE,
    )
    box = BoxDestination(box_settings(box_server, service_account_root(box_server, auth), auth=auth))
    result = box.put("ccg/file.txt", io.BytesIO(b"client credentials"), 18)
    assert result.status == "uploaded"
    assert box.stat("ccg/file.txt") is not None


def test_wrong_developer_token_is_a_clear_permanent_error(
    pipeline: Pipeline, box_server: BoxApiServer, box_root: str
) -> None:
    auth = BoxAuth(method="developer_token", developer_token=Secret("not-a-valid-token"))
    with_box(pipeline, box_settings(box_server, box_root, auth=auth))
    run = pipeline.start_run()
    item = pipeline.put(run.prefix + "orders_20250108-000000000000.parquet", b"x" * 100)
    with pytest.raises(
        PermanentError, match=r"developer token \(HTTP 401\).*destinations\.box\.auth\.developer_token"
    ) as caught:
        pipeline.deliver(item)
    assert "not-a-valid-token" not in str(caught.value)  # secrets never appear in errors


def test_a_token_requests_cannot_send_is_a_permanent_error_that_does_not_quote_it(
    box_server: BoxApiServer, box_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret holding a line break inside makes an invalid header: no retry sends it, and
    requests' message quotes the header (the token). Before: a TransientError with the token in
    it, retried and logged until dead-lettered. A trailing line break is dropped when read."""
    auth = BoxAuth(method="developer_token", developer_token=Secret("S3CRET-123\nsecond-line"))
    with pytest.raises(ConfigError, match=r"cannot be sent \(InvalidHeader\): check destinations\.box") as caught:
        BoxDestination(box_settings(box_server, box_root, auth=auth)).put("a.txt", io.BytesIO(b"a"), 1)
    assert "S3CRET" not in str(caught.value)
    monkeypatch.setenv("OFFSITE_TEST_BOX_TOKEN", box_server.token + "\n")  # as `echo TOKEN | ...` stores it
    auth = BoxAuth(method="developer_token", developer_token=Secret("env:OFFSITE_TEST_BOX_TOKEN"))
    assert (
        BoxDestination(box_settings(box_server, box_root, auth=auth)).put("a.txt", io.BytesIO(b"a"), 1).status
        == "uploaded"
    )


def test_jwt_signed_with_another_key_is_a_clear_permanent_error(
    pipeline: Pipeline, box_server: BoxApiServer, jwt_app: dict, tmp_path: Path, box_root: str
) -> None:
    other_private, _ = rsa_key_pair(b"correct horse")
    forged = json.loads(json.dumps(jwt_app))
    forged["boxAppSettings"]["appAuth"]["privateKey"] = other_private
    with_box(pipeline, box_settings(box_server, box_root, auth=jwt_auth(tmp_path, forged)))
    run = pipeline.start_run()
    item = pipeline.put(run.prefix + "orders_20250108-000000000000.parquet", b"x" * 100)
    with pytest.raises(
        PermanentError,
        match=r"Box authentication failed \(destinations\.box\.auth\.method='jwt'.*HTTP 400 invalid_grant: Signature",
    ):
        pipeline.deliver(item)


def test_wrong_ccg_secret_and_broken_jwt_config(box_server: BoxApiServer, box_root: str, tmp_path: Path) -> None:
    wrong = BoxAuth(method="ccg", client_id=box_server.client_id, client_secret=Secret("nope"), subject_id=ENTERPRISE)
    box = BoxDestination(box_settings(box_server, box_root, auth=wrong))
    with pytest.raises(PermanentError, match=r"Box authentication failed.*'ccg'.*invalid_client"):
        box.put("a.txt", io.BytesIO(b"a"), 1)
    path = tmp_path / "broken.json"
    path.write_text('{"boxAppSettings": {"clientID": "x"}}')
    broken = BoxAuth(method="jwt", jwt_config=Secret(f"file:{path}", "destinations.box.auth.jwt_config"))
    with pytest.raises(
        ConfigError, match=r"destinations\.box\.auth\.jwt_config \(file:.*\): not a Box app JSON config"
    ):
        BoxDestination(box_settings(box_server, box_root, auth=broken)).put("a.txt", io.BytesIO(b"a"), 1)


def test_expired_token_is_refreshed_once_for_many_requests(
    box_server: BoxApiServer, jwt_app: dict, tmp_path: Path
) -> None:
    auth = jwt_auth(tmp_path, jwt_app)
    root = service_account_root(box_server, auth)
    http = BoxHttp(box_settings(box_server, root, auth=auth))
    http.call("GET", f"{http.api}/folders/{root}", what="warm up").close()
    box_server.clear_requests()
    box_server.expire_tokens(include_developer=False)

    def read_folder() -> None:
        http.send("GET", f"{http.api}/folders/{root}", what="read after expiry").close()

    together(*[read_folder] * 6)  # raises what any of them raised
    log = box_server.requests()
    assert log["counts"].get("oauth_token") == 1, "one owner refreshes the token"
    assert log["statuses"]["get_folder"].get("401", 0) >= 1  # the expiry was noticed
    assert log["statuses"]["get_folder"].get("200") == 6
