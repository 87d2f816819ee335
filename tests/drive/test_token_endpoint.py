"""How a failed token refresh is judged: by the token endpoint's own answer. google-auth calls
only 500, 503, 504, 408 and 429 retryable, so a 502 (a proxy's Bad Gateway) read as a revoked
refresh token or a deleted key: a PermanentError, acked and reported, the delivery dropped."""

from __future__ import annotations

import io

import pytest
import requests

from devstack.driveapi import DriveApiServer
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
