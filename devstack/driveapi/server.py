"""Start the local Drive API server as a subprocess, and talk to its admin API.

    with DriveApiServer(tmp_path / "drive") as drive:
        service = drive.service(drive.access_token("alice@example.com"))   # googleapiclient Drive v3
        drive.add_fault("upload.chunk", "rate_limit", count=2)
        refresh = drive.refresh_token("alice@example.com")                # OAuth user credentials
        ...

The process is stopped by pid on exit (its own session: SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from devstack.local_api import AdminError, LocalApiServer

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "AdminError", "DriveApiServer", "discovery_document"]

CLIENT_ID = "devstack-drive-client.apps.googleusercontent.com"
CLIENT_SECRET = "devstack-drive-client-secret"


class DriveApiServer(LocalApiServer):
    """One ``python -m devstack.driveapi`` process on a free loopback port (``base_url``:
    the API root, the upload root and the OAuth token endpoint ``base_url + "/token"``).
    ``configure`` takes ``token_ttl_s``."""

    module = "devstack.driveapi"
    title = "Drive API server"

    def __init__(
        self, data_dir: Path, *, token_ttl_s: float | None = None, seed: Path | None = None, port: int | None = None
    ) -> None:
        super().__init__(data_dir, port=port)
        self._token_ttl_s, self._seed = token_ttl_s, seed

    @property
    def token_uri(self) -> str:
        return self.base_url + "/token"

    def _arguments(self) -> list[str]:
        argv = [] if self._token_ttl_s is None else ["--token-ttl", str(self._token_ttl_s)]
        return argv + ([] if self._seed is None else ["--seed", str(self._seed)])

    def _started(self) -> None:
        self.admin("POST", "/clients", {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})

    # -- admin API ---------------------------------------------------------------------------

    def statuses(self) -> dict[str, int]:
        """``"operation status"`` → how many answers the server gave with that status."""
        return self.admin("GET", "/requests")["statuses"]

    def clear_requests(self) -> None:
        self.admin("DELETE", "/requests")

    def refresh_token(self, principal: str) -> str:
        """A new refresh token of the stack's OAuth client acting as ``principal``."""
        return self.admin("POST", "/refresh_tokens", {"client_id": CLIENT_ID, "principal": principal})["refresh_token"]

    def revoke(self, token: str) -> bool:
        return self.admin("POST", "/revoke", {"token": token})["revoked"]

    def access_token(self, principal: str) -> str:
        """A token that never expires, acting as ``principal`` (for tests of the API itself)."""
        token = "local-static-" + secrets.token_urlsafe(12)
        self.admin("POST", "/static_tokens", {"token": token, "principal": principal})
        return token

    def add_service_account(self, email: str, public_key_pem: str) -> None:
        self.admin("POST", "/service_accounts", {"email": email, "public_key": public_key_pem})

    def expire_tokens(self) -> int:
        return self.admin("POST", "/tokens/expire")["expired"]

    def sessions(self) -> list[dict[str, Any]]:
        return self.admin("GET", "/sessions")["sessions"]

    # -- client helpers ----------------------------------------------------------------------

    def service(self, token: str) -> Any:
        """google-api-python-client's Drive v3 on this server: the discovery document the
        package bundles, with ``rootUrl`` pointed here. (``client_options.api_endpoint`` alone
        is not enough on plain HTTP: the client keeps ``https`` for upload URLs.)"""
        import google.oauth2.credentials
        from googleapiclient.discovery import build_from_document

        credentials = google.oauth2.credentials.Credentials(token=token)
        return build_from_document(discovery_document(self.base_url), credentials=credentials)


def discovery_document(base_url: str) -> dict[str, Any]:
    """The Drive v3 discovery document bundled with google-api-python-client, rooted at ``base_url``."""
    from googleapiclient import discovery_cache

    bundled = Path(discovery_cache.__file__).parent / "documents" / "drive.v3.json"
    document: dict[str, Any] = json.loads(bundled.read_text())
    document["rootUrl"] = base_url.rstrip("/") + "/"
    document["baseUrl"] = document["rootUrl"] + document["servicePath"]
    document.pop("mtlsRootUrl", None)
    return document
