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
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from devstack import procs
from devstack.ports import free_port, wait_http_ok

CLIENT_ID = "devstack-drive-client.apps.googleusercontent.com"
CLIENT_SECRET = "devstack-drive-client-secret"


class AdminError(RuntimeError):
    """An admin API call failed; the message names the call and the server's answer."""


class DriveApiServer:
    """One ``python -m devstack.driveapi`` process on a free loopback port (``base_url``:
    the API root, the upload root and the OAuth token endpoint ``base_url + "/token"``)."""

    def __init__(
        self, data_dir: Path, *, token_ttl_s: float | None = None, seed: Path | None = None, port: int | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")
        self._token_ttl_s, self._seed, self._wanted_port = token_ttl_s, seed, port
        self._spawned: procs.Spawned | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return self.base_url + "/token"

    @property
    def pid(self) -> int | None:
        return None if self._spawned is None else self._spawned.pid

    def start(self) -> DriveApiServer:
        """Start the process and wait until ``/health`` answers; retries on a port race."""
        if self._spawned is not None:
            raise RuntimeError("Drive API server already started")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last: Exception | None = None
        for _ in range(1 if self._wanted_port else 3):
            port = self._wanted_port or free_port()
            argv = [sys.executable, "-m", "devstack.driveapi", "--port", str(port), "--data-dir", str(self.data_dir)]
            if self._token_ttl_s is not None:
                argv += ["--token-ttl", str(self._token_ttl_s)]
            if self._seed is not None:
                argv += ["--seed", str(self._seed)]
            spawned = procs.spawn("driveapi", argv, log=self.log_path)
            try:
                wait_http_ok(f"http://127.0.0.1:{port}/health", 30, is_alive=lambda s=spawned: s.popen.poll() is None)
            except (RuntimeError, TimeoutError) as exc:
                last = exc
                procs.stop(spawned.pid, spawned.create_time)
                continue
            self._spawned, self.port = spawned, port
            client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
            self.admin("POST", "/clients", client)
            return self
        raise RuntimeError(
            f"Drive API server did not start ({last}); log {self.log_path}:\n{procs.log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        if self._spawned is not None:
            procs.stop(self._spawned.pid, self._spawned.create_time)
            self._spawned = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- admin API ---------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/_admin{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{method} /_admin{path} -> {exc.code}: {exc.read().decode(errors='replace')}") from exc

    def add_fault(self, operation: str, action: str, **params: Any) -> dict[str, Any]:
        """Inject a fault (see :mod:`devstack.driveapi.faults` for operations and actions)."""
        return self.admin("POST", "/faults", {"operation": operation, "action": action, **params})["faults"][0]

    def clear_faults(self) -> None:
        self.admin("DELETE", "/faults")

    def request_counts(self) -> dict[str, int]:
        return self.admin("GET", "/requests")["counts"]

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

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change run-time settings: ``token_ttl_s``."""
        return self.admin("POST", "/config", settings)

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
