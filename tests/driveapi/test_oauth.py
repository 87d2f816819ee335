"""The local Drive server's OAuth endpoint, judged by google-auth: refresh-token grant,
JWT-bearer grant for service accounts (and domain-wide delegation), expiry, revocation."""

from __future__ import annotations

import json

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import google.oauth2.service_account
import pytest
import requests

from devstack.driveapi import DriveApiServer
from devstack.driveapi.server import CLIENT_ID, CLIENT_SECRET
from tests.drive.support import service_account_key


def user_credentials(drive: DriveApiServer, refresh_token: str) -> google.oauth2.credentials.Credentials:
    return google.oauth2.credentials.Credentials(
        token=None,
        refresh_token=refresh_token,
        token_uri=drive.token_uri,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )


def whoami(drive: DriveApiServer, token: str) -> str:
    """The My Drive root id the token sees (one per principal)."""
    return str(drive.service(token).files().get(fileId="root", fields="id").execute()["id"])


def test_refresh_token_grant_issues_expiring_tokens(drive: DriveApiServer) -> None:
    drive.configure(token_ttl_s=1800)
    creds = user_credentials(drive, drive.refresh_token("carol@example.com"))
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.token and creds.valid and creds.expiry is not None
    assert whoami(drive, creds.token) == whoami(drive, drive.access_token("carol@example.com"))


def test_a_revoked_refresh_token_is_invalid_grant(drive: DriveApiServer) -> None:
    refresh = drive.refresh_token("carol@example.com")
    assert requests.post(drive.base_url + "/revoke", params={"token": refresh}, timeout=10).status_code == 200
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant: Token has been expired or revoked"):
        user_credentials(drive, refresh).refresh(google.auth.transport.requests.Request())


def test_an_expired_access_token_is_401(drive: DriveApiServer) -> None:
    creds = user_credentials(drive, drive.refresh_token("carol@example.com"))
    creds.refresh(google.auth.transport.requests.Request())
    assert whoami(drive, creds.token)
    drive.expire_tokens()
    refused = requests.get(
        f"{drive.base_url}/drive/v3/files/root", headers={"Authorization": f"Bearer {creds.token}"}, timeout=10
    )
    assert refused.status_code == 401 and refused.json()["error"]["errors"][0]["reason"] == "authError"


def test_service_account_jwt_bearer_and_delegation(drive: DriveApiServer) -> None:
    email = "sa-test@offsite-test.iam.gserviceaccount.com"
    info = json.loads(service_account_key(drive, email))
    scopes = ["https://www.googleapis.com/auth/drive"]
    creds = google.oauth2.service_account.Credentials.from_service_account_info(info, scopes=scopes)
    creds.refresh(google.auth.transport.requests.Request())
    assert whoami(drive, creds.token) == whoami(drive, drive.access_token(email))
    delegated = creds.with_subject("dave@example.com")
    delegated.refresh(google.auth.transport.requests.Request())
    assert whoami(drive, delegated.token) == whoami(drive, drive.access_token("dave@example.com"))


def test_a_service_account_key_the_server_does_not_know_is_refused(drive: DriveApiServer) -> None:
    info = json.loads(service_account_key(drive, "known@offsite-test.iam.gserviceaccount.com"))
    info["client_email"] = "stranger@offsite-test.iam.gserviceaccount.com"
    creds = google.oauth2.service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/drive"]
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        creds.refresh(google.auth.transport.requests.Request())
