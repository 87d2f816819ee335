"""Tokens: developer token, client credentials, JWT (signature checked), OAuth refresh, expiry."""

from __future__ import annotations

import json

import pytest
import requests
from box_sdk_gen import (
    BoxAPIError,
    BoxCCGAuth,
    BoxClient,
    BoxDeveloperTokenAuth,
    BoxJWTAuth,
    BoxOAuth,
    BoxSDKError,
    CCGConfig,
    JWTConfig,
    OAuthConfig,
)
from box_sdk_gen.networking.network import NetworkSession

from devstack.boxapi import BoxApiServer
from tests.box_jwt import jwt_app_config, rsa_key_pair
from tests.boxapi.conftest import unique


def network(box: BoxApiServer) -> NetworkSession:
    return NetworkSession(base_urls=box.base_urls())


def ccg_client(box: BoxApiServer, secret: str | None = None, **subject: str) -> BoxClient:
    if not subject:
        subject = {"enterprise_id": box.enterprise_id}
    config = CCGConfig(client_id=box.client_id, client_secret=secret or box.client_secret, **subject)
    return BoxClient(auth=BoxCCGAuth(config=config)).with_custom_base_urls(box.base_urls())


def jwt_config_json(client_id: str, secret: str, kid: str, private_pem: str, enterprise_id: str) -> str:
    """The JSON the Box developer console hands out for a JWT app."""
    return json.dumps(jwt_app_config(client_id, secret, kid, private_pem, "s3cret", enterprise_id))


@pytest.fixture(scope="module")
def jwt_app(box_server: BoxApiServer) -> dict[str, str]:
    """A JWT app registered with the server: its public key under kid 'k1'."""
    private, public = rsa_key_pair(b"s3cret")
    app = {"client_id": unique("jwt-app"), "secret": unique("secret"), "kid": "k1", "private": private}
    box_server.register_app(app["client_id"], app["secret"], enterprise_id="900000777", public_keys={"k1": public})
    return app


def jwt_client(box: BoxApiServer, app: dict[str, str], *, kid: str | None = None, private: str | None = None):
    config = JWTConfig.from_config_json_string(
        jwt_config_json(app["client_id"], app["secret"], kid or app["kid"], private or app["private"], "900000777")
    )
    return BoxClient(auth=BoxJWTAuth(config=config)).with_custom_base_urls(box.base_urls())


def test_developer_token_is_the_developer(client: BoxClient) -> None:
    me = client.users.get_user_me()
    assert me.type == "user"
    assert me.login == "developer@devstack.local"
    assert me.max_upload_size > 0


def test_unknown_token_is_401_with_box_challenge(box: BoxApiServer) -> None:
    response = requests.get(f"{box.base_url}/2.0/users/me", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert response.status_code == 401
    assert response.content == b""
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    missing = requests.get(f"{box.base_url}/2.0/users/me", timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="Service"'
    # The SDK cannot refresh a developer token: it gives up with its own error.
    sdk = BoxClient(auth=BoxDeveloperTokenAuth(token="nope")).with_custom_base_urls(box.base_urls())
    with pytest.raises(BoxSDKError, match="Developer token has expired"):
        sdk.users.get_user_me()


def test_client_credentials_enterprise_and_user_subjects(box: BoxApiServer) -> None:
    service = ccg_client(box).users.get_user_me()
    assert service.login.startswith("AutomationUser_")
    user = ccg_client(box, user_id="31415926").users.get_user_me()
    assert user.id == "31415926"


def test_client_credentials_rejects_bad_secret_and_foreign_enterprise(box: BoxApiServer) -> None:
    with pytest.raises(BoxAPIError) as bad_secret:
        ccg_client(box, secret="wrong").users.get_user_me()
    assert bad_secret.value.response_info.status_code == 400
    assert bad_secret.value.response_info.body["error"] == "invalid_client"
    with pytest.raises(BoxAPIError) as foreign:
        ccg_client(box, enterprise_id="123").users.get_user_me()
    assert foreign.value.response_info.body == {
        "error": "invalid_grant",
        "error_description": "Grant credentials are invalid",
    }


def test_jwt_assertion_signed_with_registered_key(box: BoxApiServer, jwt_app: dict[str, str]) -> None:
    me = jwt_client(box, jwt_app).users.get_user_me()
    assert me.login.startswith("AutomationUser_")


def test_jwt_signed_with_another_key_is_refused(box: BoxApiServer, jwt_app: dict[str, str]) -> None:
    other_private, _ = rsa_key_pair(b"s3cret")
    with pytest.raises(BoxAPIError) as wrong_key:
        jwt_client(box, jwt_app, private=other_private).users.get_user_me()
    assert wrong_key.value.response_info.body["error"] == "invalid_grant"
    assert "Signature verification error" in wrong_key.value.response_info.body["error_description"]
    with pytest.raises(BoxAPIError) as unknown_kid:
        jwt_client(box, jwt_app, kid="k2").users.get_user_me()
    assert "kid invalid" in unknown_kid.value.response_info.body["error_description"]


def test_expired_token_is_refreshed_by_the_sdk(box: BoxApiServer) -> None:
    client = ccg_client(box)
    client.users.get_user_me()
    first = client.auth.retrieve_token(network_session=client.network_session).access_token
    box.clear_requests()
    assert box.expire_tokens(first) == 1
    response = requests.get(f"{box.base_url}/2.0/users/me", headers={"Authorization": f"Bearer {first}"}, timeout=10)
    assert response.status_code == 401
    assert "expired" in response.headers["WWW-Authenticate"]
    client.users.get_user_me()  # 401 -> the SDK asks for a new token -> retried call succeeds
    assert client.auth.retrieve_token(network_session=client.network_session).access_token != first
    counts = box.request_counts()
    assert counts["oauth_token"] == 1
    assert counts["get_user_me"] == 3  # the raw call, the SDK's 401, the retried call


def test_tokens_expire_after_their_lifetime_setting(box: BoxApiServer) -> None:
    box.configure(token_ttl_s=0)
    client = ccg_client(box)
    token = client.auth.refresh_token(network_session=client.network_session)
    assert token.expires_in == 0
    response = requests.get(
        f"{box.base_url}/2.0/users/me", headers={"Authorization": f"Bearer {token.access_token}"}, timeout=10
    )
    assert response.status_code == 401


def test_oauth_refresh_token_grant_rotates_tokens(box: BoxApiServer) -> None:
    auth = BoxOAuth(OAuthConfig(client_id=box.client_id, client_secret=box.client_secret))
    first = auth.get_tokens_authorization_code_grant(box.authorization_code(), network_session=network(box))
    assert first.refresh_token
    client = BoxClient(auth=auth).with_custom_base_urls(box.base_urls())
    box.expire_tokens(first.access_token)
    assert client.users.get_user_me().login == "developer@devstack.local"
    second = auth.retrieve_token(network_session=client.network_session)
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token
    # Refresh tokens are single use.
    reuse = requests.post(
        f"{box.base_url}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first.refresh_token,
            "client_id": box.client_id,
            "client_secret": box.client_secret,
        },
        timeout=10,
    )
    assert reuse.status_code == 400
    assert reuse.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}


def test_revoked_token_is_refused(box: BoxApiServer) -> None:
    client = ccg_client(box)
    token = client.auth.refresh_token(network_session=client.network_session).access_token
    client.auth.revoke_token(network_session=client.network_session)
    response = requests.get(f"{box.base_url}/2.0/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 401


def test_jwt_key_given_on_the_command_line(tmp_path) -> None:
    private, public = rsa_key_pair(b"s3cret")
    pem = tmp_path / "public.pem"
    pem.write_text(public)
    with BoxApiServer(tmp_path / "box", jwt_public_key=pem) as box:
        app = {"client_id": box.client_id, "secret": box.client_secret, "kid": "any-kid", "private": private}
        config = JWTConfig.from_config_json_string(
            jwt_config_json(app["client_id"], app["secret"], app["kid"], private, box.enterprise_id)
        )
        client = BoxClient(auth=BoxJWTAuth(config=config)).with_custom_base_urls(box.base_urls())
        assert client.users.get_user_me().login.startswith("AutomationUser_")
