"""Everything decided before the first process starts: ports, programs, keys, config, commands.

Planning fails with a StackError on bad input (unknown function, pinned port in use, missing
program, broken config overlay) while nothing is running yet, so a failed ``up`` leaves no
process behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import binaries, drivestack, localconfig, oidc, sshd
from devstack.errors import StackError
from devstack.launches import Launch, box_token_path, launches_for
from devstack.ports import free_port, port_in_use
from shared import topology
from shared.config import Config

OPTIONAL = ("bigquery", "sftp", "box", "drive", "webhook")  # may be left out with without=…

# "bigquery" is the BigQuery front (devstack/bqfront) every client talks to; bqemulator listens
# behind it on "bqemulator" (REST) and "bigquery_grpc" (Storage Read/Write API).
CORE_PORTS = (
    *("pubsub", "gcs", "bigquery", "bqemulator", "bigquery_grpc", "sftp", "box", "webhook", "relay", "push", "drive"),
    "oidc",  # the local OIDC token issuer (devstack/oidc.py) the HTTP trigger checks tokens against
)
SFTP_BACKENDS = ("auto", "openssh", "asyncssh")
ENV_SFTP_BACKEND = "OFFSITE_DEV_SFTP_BACKEND"
MARKER = "OFFSITE_DEV_STACK_ROOT"  # in every component's environment: finds strays of a killed `up`
COMPONENT = "OFFSITE_DEV_COMPONENT"  # … with the component's name: finds leftovers of one component


def port_env(name: str) -> str:
    return f"OFFSITE_DEV_PORT_{name.upper()}"


@dataclass
class Plan:
    root: Path
    config: Config
    ports: dict[str, int]
    functions: list[str]
    without: set[str]
    targets: dict[str, str]  # function → URL its events go to (started function or override)
    env: dict[str, str]  # the contract env of function processes
    sftp_files: sshd.SftpFiles
    sftp_user: str
    sftp_backend: str
    sftp_note: str
    box_token: str
    launches: dict[str, Launch] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def choose_functions(functions: bool | Collection[str]) -> list[str]:
    known = [fn.name for fn in topology.FUNCTIONS]
    if functions is True:
        return known
    if functions is False:
        return []
    chosen = [functions] if isinstance(functions, str) else list(functions)
    unknown = [f for f in chosen if f not in known]
    if unknown:
        raise StackError(f"unknown function {unknown[0]!r}", f"choose from {', '.join(known)}")
    return [f for f in known if f in chosen]


def allocate_ports(names: list[str], pinned: Mapping[str, int]) -> dict[str, int]:
    """Pinned ports (argument, then OFFSITE_DEV_PORT_<NAME>) must be free; the rest are picked."""
    ports: dict[str, int] = {}
    for name in names:
        source = "ports argument" if name in pinned else port_env(name)
        value = pinned.get(name) if name in pinned else os.environ.get(port_env(name))
        if value in (None, ""):
            continue
        try:
            port = int(value)
        except ValueError:
            raise StackError(
                f"{source}={value!r} for {name} is not a port number", "use an integer 1024-65535"
            ) from None
        if not 0 < port < 65536:
            raise StackError(f"{source}={port} for {name} is not a TCP port", "use 1024-65535")
        if port in ports.values() or port_in_use(port):
            raise StackError(
                f"port {port} for {name} (pinned by {source}) is already in use",
                f"stop what listens there, pick another port, or unset {port_env(name)} to get a free one",
            )
        ports[name] = port
    for name in names:
        while name not in ports:
            candidate = free_port()
            if candidate not in ports.values():
                ports[name] = candidate
    return ports


def function_env(plan: Plan) -> dict[str, str]:
    p, project = plan.ports, plan.config.project
    return {
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{p['pubsub']}",
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{p['gcs']}",
        "GOOGLE_CLOUD_PROJECT": project,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": f"http://127.0.0.1:{p['pubsub']}/",
        "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
        "CLOUDSDK_CORE_PROJECT": project,
        "OFFSITE_CONFIG": str(plan.root / "config.yaml"),
        "OFFSITE_BIGQUERY_ENDPOINT": f"http://127.0.0.1:{p['bigquery']}",  # the front, not bqemulator
        # Storage Write API (gRPC): bqemulator serves it itself; the front speaks REST only.
        "OFFSITE_BIGQUERY_STORAGE_ENDPOINT": f"127.0.0.1:{p['bigquery_grpc']}",
        "OFFSITE_STACK": str(plan.root / "stack.json"),
        "OFFSITE_LOG_FORMAT": "json",
    }


def _box_token(root: Path) -> str:
    path = box_token_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _sftp_setup(files: sshd.SftpFiles, port: int, requested: str | None) -> tuple[str, Path | None, str, str]:
    """(backend, sshd path, login user, note): OpenSSH where it can run, else asyncssh."""
    backend = requested or os.environ.get(ENV_SFTP_BACKEND) or "auto"
    if backend not in SFTP_BACKENDS:
        raise StackError(f"sftp backend {backend!r} is unknown", f"use one of {', '.join(SFTP_BACKENDS)}")
    if backend == "asyncssh":
        return "asyncssh", None, _me(), "asyncssh chosen explicitly"
    required = backend == "openssh" or bool(os.environ.get(binaries.ENV_SSHD))
    path = binaries.sshd(required)
    if path is None:
        return "asyncssh", None, _me(), f"fallback: OpenSSH sshd not found at {binaries.DEFAULT_SSHD}"
    user, note = sshd.choose_user(files)
    sshd.write_config(files, port, user)
    why_not = sshd.check_runnable(path, files)
    if why_not and required:
        raise StackError(f"sftp: {why_not}", "fix the sshd setup or use --sftp asyncssh")
    if why_not:
        return "asyncssh", None, _me(), f"fallback: {why_not}"
    return "openssh", path, user, note


def make_plan(
    root: Path,
    *,
    functions: bool | Collection[str],
    without: Collection[str],
    targets: Mapping[str, str] | None,
    config_overlay: Path | None,
    ports: Mapping[str, int] | None,
    sftp_backend: str | None,
) -> Plan:
    skipped = set(without)
    bad = skipped - set(OPTIONAL)
    if bad:
        raise StackError(f"cannot leave out {min(bad)!r}", f"optional components are {', '.join(OPTIONAL)}")
    chosen = choose_functions(functions)
    overlay = localconfig.read_overlay(config_overlay) if config_overlay else {}
    targets = dict(targets or {})
    for name in targets:
        choose_functions([name])  # validates the name
    port_map = allocate_ports([*CORE_PORTS, *chosen], dict(ports or {}))
    (root / "logs").mkdir(parents=True, exist_ok=True)
    files = sshd.prepare_files(root / "sftp", port_map["sftp"])
    if "sftp" in skipped:
        backend, sshd_path, user, note = "none", None, _me(), "left out"
    else:
        backend, sshd_path, user, note = _sftp_setup(files, port_map["sftp"], sftp_backend)
    box_token = _box_token(root)
    raw = _stack_config(root, port_map, chosen, skipped, files=files, sftp_user=user, box_token=box_token)
    config = localconfig.write(
        root / "config.yaml", localconfig.deep_merge(raw, overlay), overlay_source=str(config_overlay or "")
    )
    plan = Plan(
        root=root,
        config=config,
        ports=port_map,
        functions=chosen,
        without=skipped,
        targets={**{f: f"http://127.0.0.1:{port_map[f]}" for f in chosen}, **targets},
        env={},
        sftp_files=files,
        sftp_user=user,
        sftp_backend=backend,
        sftp_note=note,
        box_token=box_token,
    )
    plan.env = function_env(plan)
    plan.launches = launches_for(plan, sshd_path)
    for launch in plan.launches.values():
        launch.env[MARKER] = str(root)
        launch.env[COMPONENT] = launch.name
    return plan


def _stack_config(
    root: Path,
    port_map: dict[str, int],
    chosen: list[str],
    skipped: set[str],
    *,
    files: sshd.SftpFiles,
    sftp_user: str,
    box_token: str,
) -> dict[str, Any]:
    """The config of the stack's own components, before the user's overlay."""
    raw = localconfig.generated(
        box_port=port_map["box"],
        box_token=box_token,
        sftp_port=port_map["sftp"],
        sftp_user=sftp_user,
        sftp_key=files.user_key,
        known_hosts=files.known_hosts,
        sftp_directory=files.data,
        webhook_port=port_map["webhook"],
        drive=None if "drive" in skipped else drivestack.destination(port_map["drive"], drivestack.prepare(root)),
        app_db=root / "app.db",
    )
    raw["http"] = {  # the HTTP trigger accepts tokens of the local issuer, for its own URL
        "audiences": [f"http://127.0.0.1:{port_map[f]}" for f in chosen if topology.function(f).http],
        "issuers": [oidc.issuer(port_map["oidc"])],
        "certs_url": oidc.certs_url(port_map["oidc"]),
    }
    oidc.ensure_keys(root)
    return raw


def _me() -> str:
    import getpass

    return getpass.getuser()
