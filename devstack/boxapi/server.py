"""Start the local Box API server as a subprocess, and talk to its admin API.

    with BoxApiServer(tmp_path / "box") as box:
        client = box.client()                  # box-sdk-gen BoxClient, developer token
        box.add_fault("upload_part", "rate_limit", count=2, retry_after=0)
        ...
        assert box.request_counts()["upload_file"] == 1

The process is stopped by pid on exit (SIGTERM, then SIGKILL); nothing is left running
(devstack.local_api.LocalApiServer, shared with the Drive API server).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from devstack.local_api import AdminError, LocalApiServer

__all__ = ["AdminError", "BoxApiServer", "wait_gone"]

DEFAULT_DEVELOPER_TOKEN = "devstack-developer-token"
DEFAULT_CLIENT_ID = "devstack-client-id"
DEFAULT_CLIENT_SECRET = "devstack-client-secret"
DEFAULT_ENTERPRISE_ID = "900000001"


class BoxApiServer(LocalApiServer):
    """One ``python -m devstack.boxapi`` process on a free loopback port.

    ``base_url`` is what the SDK's ``BaseUrls.base_url`` takes (upload URL ``base_url +
    "/api"``, OAuth URL ``base_url + "/oauth2"``); ``token`` is the developer token. ``configure`` takes token_ttl_s, session_ttl_s,
    commit_wait_s, download_ready_s and max_upload_size.
    """

    module = "devstack.boxapi"
    title = "Box API server"

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
        super().__init__(data_dir, port=port, log_path=log_path, start_timeout_s=start_timeout_s)
        self.token = developer_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.enterprise_id = enterprise_id
        self._jwt_public_key = jwt_public_key
        self._token_ttl_s = token_ttl_s
        self._commit_wait_s = commit_wait_s

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def upload_url(self) -> str:
        return self.base_url + "/api"

    @property
    def oauth2_url(self) -> str:
        return self.base_url + "/oauth2"

    def _arguments(self) -> list[str]:
        cmd = ["--enterprise-id", self.enterprise_id]  # secrets go in the environment (_environment)
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

    # -- SDK helpers ---------------------------------------------------------------------------

    def base_urls(self) -> Any:
        from box_sdk_gen.networking.base_urls import BaseUrls

        return BaseUrls(base_url=self.base_url, upload_url=self.upload_url, oauth_2_url=self.oauth2_url)

    def client(self, token: str | None = None) -> Any:
        """A box-sdk-gen ``BoxClient`` on this server with the developer token (or ``token``)."""
        from box_sdk_gen import BoxClient, BoxDeveloperTokenAuth

        return BoxClient(auth=BoxDeveloperTokenAuth(token=token or self.token)).with_custom_base_urls(self.base_urls())

    # -- admin API -------------------------------------------------------------------------

    def requests(self, operation: str | None = None) -> dict[str, Any]:
        query = f"?operation={operation}" if operation else ""
        return self.admin("GET", f"/requests{query}")

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
