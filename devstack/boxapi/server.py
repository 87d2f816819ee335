"""Start the local Box API server as a subprocess, and talk to its admin API.

    with BoxApiServer(tmp_path / "box") as box:
        client = box.client()                  # box-sdk-gen BoxClient, developer token
        box.add_fault("upload_part", "rate_limit", count=2, retry_after=0)
        ...
        assert box.request_counts()["upload_file"] == 1

The process is stopped by pid on exit (SIGTERM, then SIGKILL); nothing is left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from devstack.ports import free_port, wait_http_ok

DEFAULT_DEVELOPER_TOKEN = "devstack-developer-token"
DEFAULT_CLIENT_ID = "devstack-client-id"
DEFAULT_CLIENT_SECRET = "devstack-client-secret"
DEFAULT_ENTERPRISE_ID = "900000001"


class AdminError(RuntimeError):
    """An admin API call failed; the message names the call and the server's answer."""


class BoxApiServer:
    """One ``python -m devstack.boxapi`` process on a free loopback port.

    ``base_url`` is what the SDK's ``BaseUrls.base_url`` takes (upload URL ``base_url +
    "/api"``, OAuth URL ``base_url + "/oauth2"``); ``token`` is the developer token.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        developer_token: str = DEFAULT_DEVELOPER_TOKEN,
        client_id: str | None = DEFAULT_CLIENT_ID,
        client_secret: str | None = DEFAULT_CLIENT_SECRET,
        enterprise_id: str = DEFAULT_ENTERPRISE_ID,
        jwt_public_key: Path | None = None,
        token_ttl_s: float | None = None,
        commit_wait_s: float | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.token = developer_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.enterprise_id = enterprise_id
        self._jwt_public_key = jwt_public_key
        self._token_ttl_s = token_ttl_s
        self._commit_wait_s = commit_wait_s
        self._wanted_port = port
        self.log_path = log_path or self.data_dir.with_name(self.data_dir.name + ".log")
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def upload_url(self) -> str:
        return self.base_url + "/api"

    @property
    def oauth2_url(self) -> str:
        return self.base_url + "/oauth2"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _command(self, port: int) -> list[str]:
        cmd = [sys.executable, "-m", "devstack.boxapi", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--data-dir", str(self.data_dir)]  # secrets go in the environment (_environment)
        cmd += ["--enterprise-id", self.enterprise_id]
        if self.client_id is not None and self.client_secret is not None:
            cmd += ["--client-id", self.client_id]
            if self._jwt_public_key is not None:
                cmd += ["--jwt-public-key", str(self._jwt_public_key)]
        if self._token_ttl_s is not None:
            cmd += ["--token-ttl", str(self._token_ttl_s)]
        if self._commit_wait_s is not None:
            cmd += ["--commit-wait", str(self._commit_wait_s)]
        return cmd

    def _environment(self) -> dict[str, str]:
        """The server's environment: ours plus the secrets, which never go on its command line."""
        env = {**os.environ, "BOXAPI_DEVELOPER_TOKEN": self.token}
        if self.client_secret is not None:
            env["BOXAPI_CLIENT_SECRET"] = self.client_secret
        return env

    def start(self) -> BoxApiServer:
        """Start the process and wait until ``/health`` answers; retries on a port race."""
        if self._process is not None:
            raise RuntimeError("Box API server already started")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._wanted_port else 3
        last_error: Exception | None = None
        for _ in range(attempts):
            port = self._wanted_port or free_port()
            with open(self.log_path, "ab") as log:
                process = subprocess.Popen(
                    self._command(port),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=self._environment(),
                )
            try:
                wait_http_ok(
                    f"http://127.0.0.1:{port}/health",
                    self._start_timeout_s,
                    is_alive=lambda p=process: p.poll() is None,
                )
            except (RuntimeError, TimeoutError) as exc:
                last_error = exc
                _stop_process(process)
                continue
            self._process, self.port = process, port
            return self
        tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        raise RuntimeError(f"Box API server did not start ({last_error}); log {self.log_path}:\n{tail}")

    def stop(self) -> None:
        if self._process is not None:
            _stop_process(self._process)
            self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- SDK helpers ---------------------------------------------------------------------------

    def base_urls(self) -> Any:
        from box_sdk_gen.networking.base_urls import BaseUrls

        return BaseUrls(base_url=self.base_url, upload_url=self.upload_url, oauth_2_url=self.oauth2_url)

    def client(self, token: str | None = None) -> Any:
        """A box-sdk-gen ``BoxClient`` on this server with the developer token (or ``token``)."""
        from box_sdk_gen import BoxClient, BoxDeveloperTokenAuth

        return BoxClient(auth=BoxDeveloperTokenAuth(token=token or self.token)).with_custom_base_urls(self.base_urls())

    # -- admin API -------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/_admin{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{method} /_admin{path} -> {exc.code}: {exc.read().decode(errors='replace')}") from exc
        return json.loads(raw) if raw else None

    def add_fault(self, operation: str, action: str, **params: Any) -> dict[str, Any]:
        """Inject a fault (see :mod:`devstack.boxapi.faults` for actions and parameters)."""
        return self.admin("POST", "/faults", {"operation": operation, "action": action, **params})["faults"][0]

    def clear_faults(self) -> None:
        self.admin("DELETE", "/faults")

    def faults(self) -> list[dict[str, Any]]:
        return self.admin("GET", "/faults")["faults"]

    def requests(self, operation: str | None = None) -> dict[str, Any]:
        query = f"?operation={operation}" if operation else ""
        return self.admin("GET", f"/requests{query}")

    def request_counts(self) -> dict[str, int]:
        return self.requests()["counts"]

    def clear_requests(self) -> None:
        self.admin("DELETE", "/requests")

    def reset(self, *, data: bool = True) -> None:
        self.admin("POST", "/reset", {"data": data})

    def expire_tokens(self, token: str | None = None, *, include_developer: bool = True) -> int:
        return self.admin("POST", "/tokens/expire", {"token": token, "include_developer": include_developer})["expired"]

    def register_app(
        self, client_id: str, client_secret: str, *, enterprise_id: str | None = None, public_keys: dict | None = None
    ) -> None:
        body = {"client_id": client_id, "client_secret": client_secret, "public_keys": public_keys or {}}
        if enterprise_id is not None:
            body["enterprise_id"] = enterprise_id
        self.admin("POST", "/apps", body)

    def authorization_code(self, client_id: str | None = None, user_id: str | None = None) -> str:
        return self.admin(
            "POST", "/authorization_codes", {"client_id": client_id or self.client_id, "user_id": user_id}
        )["code"]

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change run-time settings: token_ttl_s, session_ttl_s, commit_wait_s, max_upload_size."""
        return self.admin("POST", "/config", settings)


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process (its own session: only its pid), SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    """True once no process has ``pid`` (for tests that check nothing is left behind)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
