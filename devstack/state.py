"""What a running stack is: :class:`StackInfo`, saved as ``<root>/stack.json``.

Other code (tests, the demo, ``offsite dev status``) reads this instead of guessing ports.
Keep field names stable; add fields rather than rename them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.errors import StackError

STACK_FILE = "stack.json"
ENV_FILE = "env"


@dataclass
class ComponentInfo:
    """One process the stack started."""

    name: str  # pubsub, gcs, bigquery, sftp, box, webhook, relay, or a function name
    port: int
    pid: int
    create_time: float  # seconds since boot (procs.start_time); with pid, identifies the process
    health_url: str  # http://… (GET answers 2xx) or ssh://127.0.0.1:PORT (SSH banner)
    log: str
    health: str = "starting"  # starting | ok | unhealthy | dead (live value: devstack.stack.status)
    note: str = ""  # e.g. why the asyncssh fallback serves SFTP
    any_status: bool = False  # functions: any HTTP answer means the app imported and listens
    ports: dict[str, int] = field(default_factory=dict)  # extra ports, e.g. bigquery's grpc


@dataclass
class SftpInfo:
    host: str
    port: int
    username: str
    key_path: Path  # the user's private key (partner `local` logs in with it)
    known_hosts_path: Path  # "[127.0.0.1]:PORT ssh-ed25519 …"
    directory: Path  # absolute path of <root>/sftp/data on this machine = the remote directory
    backend: str  # "openssh" or "asyncssh"
    host_key_path: Path
    note: str = ""


@dataclass
class BoxInfo:
    base_url: str  # BaseUrls(base_url=…); the SDK appends /2.0
    upload_url: str
    oauth_url: str
    developer_token: str
    data_dir: Path


@dataclass
class StackInfo:
    root: Path
    project: str
    bucket: str
    env: dict[str, str]  # what function processes get; also <root>/env
    config_path: Path
    pubsub_host: str  # "127.0.0.1:PORT" (PUBSUB_EMULATOR_HOST)
    gcs_url: str  # "http://127.0.0.1:PORT" (STORAGE_EMULATOR_HOST)
    bigquery_url: str  # REST api_endpoint for bigquery.Client: the BigQuery front (devstack/bqfront)
    bigquery_grpc: str  # "127.0.0.1:PORT" Storage Read/Write API
    bigquery_extract_dir: (
        Path  # BQEMU_GCS_LOCAL_ROOT of bqemulator's own extract jobs (the front runs extracts instead)
    )
    sftp: SftpInfo
    box: BoxInfo
    webhook_url: str  # alerts.slack_webhook_url
    webhook_messages_url: str  # GET: every alert body received so far
    alerts_file: Path
    relay_url: str
    gcs_notification_topic: str
    functions: dict[str, str]  # name → base URL of its functions-framework process
    dead_letter_subscriptions: dict[str, str]  # push subscription → pull subscription on its DLQ
    components: list[ComponentInfo] = field(default_factory=list)
    state: str = "starting"  # starting | running
    started_at: str = ""
    state_bucket: str = ""  # config.state_bucket_name: markers, history, alerts, checkpoints (no events)
    bqemulator_url: str = ""  # bqemulator's own REST port, behind the front (for tests of the front)
    drive_url: str = ""  # the Drive v3 server (devstack/driveapi) of destination drive:reports; "" if left out

    def component(self, name: str) -> ComponentInfo:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(f"no component {name!r} in this stack (have: {', '.join(c.name for c in self.components)})")

    @property
    def env_file(self) -> Path:
        return self.root / ENV_FILE

    def pubsub_admin(self) -> Any:
        """A :class:`devstack.pubsub_admin.PubSubAdmin` for this stack's emulator and project."""
        from devstack.pubsub_admin import PubSubAdmin

        return PubSubAdmin(self.pubsub_host, self.project)

    def to_json(self) -> str:
        return json.dumps(_plain(dataclasses.asdict(self)), indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        raw = json.loads(text)
        raw["components"] = [ComponentInfo(**c) for c in raw.get("components", [])]
        raw["sftp"] = _with_paths(SftpInfo, raw["sftp"])
        raw["box"] = _with_paths(BoxInfo, raw["box"])
        return _with_paths(cls, raw)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _with_paths(cls: type, raw: dict[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = {k: v for k, v in raw.items() if k in known}  # tolerate fields from newer versions
    for name, fld in known.items():
        if fld.type in ("Path", Path) and isinstance(values.get(name), str):
            values[name] = Path(values[name])
    return cls(**values)


def save(info: StackInfo) -> None:
    path = info.root / STACK_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(info.to_json())
    tmp.chmod(0o600)
    tmp.replace(path)


def write_env_file(info: StackInfo) -> None:
    lines = [f"export {k}={shlex.quote(v)}" for k, v in info.env.items()]
    info.env_file.write_text("# source me: . " + str(info.env_file) + "\n" + "\n".join(lines) + "\n")


def load(root: Path) -> StackInfo:
    path = Path(root) / STACK_FILE
    try:
        return StackInfo.from_json(path.read_text())
    except FileNotFoundError:
        raise StackError(f"no local stack recorded in {path.parent}", "start one with `offsite dev up`") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(
            f"{path} is unreadable ({exc})", "run `offsite dev down` (it also finds unrecorded processes)"
        ) from None


def forget(root: Path) -> None:
    for name in (STACK_FILE, ENV_FILE):
        try:
            os.unlink(Path(root) / name)
        except FileNotFoundError:
            pass
