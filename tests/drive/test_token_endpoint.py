"""How a failed token refresh is judged: by the token endpoint's own answer. google-auth calls
only 500, 503, 504, 408 and 429 retryable, so a 502 (a proxy's Bad Gateway) read as a revoked
refresh token or a deleted key: a PermanentError, acked and reported, the delivery dropped."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys

import pytest
import requests

from devstack.driveapi import DriveApiServer
from shared import log
from shared.config.drive import DriveDestination as DriveSettings
from shared.destinations.drive.auth import DriveCredentials
from shared.destinations.drive.destination import DriveDestination
from shared.errors import TransientError
from tests.drive.support import new_folder, new_shared_drive, oauth_settings, service_account_settings


def settings_for(drive: DriveApiServer, method: str) -> DriveSettings:
    if method == "oauth":
        return oauth_settings(drive, new_folder(drive))
    return service_account_settings(drive, new_shared_drive(drive))


@pytest.mark.parametrize("method", ["oauth", "service_account"])
def test_a_bad_gateway_from_the_token_endpoint_is_transient(drive: DriveApiServer, method: str) -> None:
    credentials = DriveCredentials(settings_for(drive, method).auth, "destinations.drive.t", requests.Session())
    drive.add_fault("token", "error", status=502)
    with pytest.raises(TransientError, match=r"destinations\.drive\.t: token refresh failed for now: 502"):
        credentials.token()
    assert credentials.token()  # the endpoint is back: the same credentials get a token


@pytest.mark.parametrize("method", ["oauth", "service_account"])
def test_a_put_through_a_bad_gateway_at_the_token_endpoint_is_delivered(drive: DriveApiServer, method: str) -> None:
    dest = DriveDestination("t", settings_for(drive, method))
    drive.add_fault("token", "error", status=502)
    assert dest.put("a/x.txt", io.BytesIO(b"x"), 1).status == "uploaded"  # retried in-process
    assert drive.statuses()["token 502"] == 1


@pytest.mark.parametrize("method", ["oauth", "service_account"])
def test_each_token_refresh_is_logged_with_its_cause_and_expiry_never_the_token(
    drive: DriveApiServer, method: str
) -> None:
    """The refresh cycle is visible in the logs (an operator watching a refresh token's health)."""
    credentials = DriveCredentials(settings_for(drive, method).auth, "destinations.drive.t", requests.Session())
    logged = io.StringIO()
    log.configure("json", stream=logged)
    try:
        first = credentials.token()
        assert credentials.token() == first  # still valid: no refresh, no line
        second = credentials.token(force=True, stale=first)
    finally:
        log.configure(stream=sys.__stderr__)  # fd 2: still captured by pytest, never closed
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    refreshes = [line for line in lines if line["message"] == "drive access token refreshed"]
    assert [(r["cause"], r["method"], r["where"]) for r in refreshes] == [
        ("first", method, "destinations.drive.t"),
        ("refused (HTTP 401)", method, "destinations.drive.t"),
    ]
    for line in refreshes:
        assert dt.datetime.fromisoformat(line["expires_at"]) > dt.datetime.now(dt.UTC)
    assert first not in logged.getvalue() and second not in logged.getvalue()
