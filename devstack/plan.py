"""Everything decided before the first process starts: ports, programs, keys, config, commands.

Planning fails with a StackError on bad input (unknown function, pinned port in use, missing
program, broken config overlay) while nothing is running yet, so a failed ``up`` leaves no
process behind.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devstack import binaries, bq_launcher, drivestack, localconfig, oidc, sshd
from devstack.errors import StackError
from devstack.ports import free_port, port_in_use
from devstack.push.routes import concurrency_for
from shared import topology
from shared.config import Config

REPO = Path(__file__).resolve().parent.parent
OPTIONAL = ("bigquery", "sftp", "box", "drive", "webhook")  # may be left out with without=…
# The front's allocator: Arrow's buffers from malloc (not Arrow's jemalloc, which keeps freed
# pages a while) and one malloc arena for all its threads (gRPC's, the HTTP server's, the shard
# sender's), so each batch reuses what the last one freed. A 2 M-row export peaked at +111-126 MB
# in-process without, +48-55 MB with, at the same speed.
FRONT_ALLOCATOR = {"ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_ARENA_MAX": "1"}

# "bigquery" is the BigQuery front (devstack/bqfront) every client talks to; bqemulator listens
# behind it on "bqemulator" (REST) and "bigquery_grpc" (Storage Read/Write API).
CORE_PORTS = (
    *("pubsub", "gcs", "bigquery", "bqemulator", "bigquery_grpc", "sftp", "box", "webhook", "relay", "push", "drive"),
    "oidc",  # the local OIDC token issuer (devstack/oidc.py) the HTTP trigger checks tokens against
)
GCS_NOTIFICATIONS = "gcs-notifications"
AUDIT_LOG_TOPIC = "bigquery-audit-log"  # the BigQuery front's job audit-log entries (Eventarc's feed)
SFTP_BACKENDS = ("auto", "openssh", "asyncssh")
ENV_SFTP_BACKEND = "OFFSITE_DEV_SFTP_BACKEND"
# bqemulator keeps every table in memory unless this is set (a DuckDB size such as "4GB"): then
# it stores them in a file under the stack root and holds at most that much in memory.
ENV_BQ_MEMORY_LIMIT = bq_launcher.ENV_MEMORY_LIMIT
ENV_FUNCTIONS_DIR = "OFFSITE_DEV_FUNCTIONS_DIR"  # run functions/<source>/main.py from another tree
MARKER = "OFFSITE_DEV_STACK_ROOT"  # in every component's environment: finds strays of a killed `up`
COMPONENT = "OFFSITE_DEV_COMPONENT"  # … with the component's name: finds leftovers of one component


def port_env(name: str) -> str:
    return f"OFFSITE_DEV_PORT_{name.upper()}"


@dataclass
class Launch:
    """How to start one component and how to tell it is up."""

    name: str
    port: int
    argv: list[str]
    health_url: str
    env: dict[str, str]
    cwd: Path | None = None
    any_status: bool = False
    note: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    fix_if_dead: str = "see the log tail below"


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


def _python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def _box_token_path(root: Path) -> Path:
    return root / "box" / "developer_token"


def _box_token(root: Path) -> str:
    path = _box_token_path(root)
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
    raw = localconfig.generated(
        box_port=port_map["box"],
        box_token=box_token,
        sftp_port=port_map["sftp"],
        sftp_user=user,
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
    _add_launches(plan, sshd_path)
    for launch in plan.launches.values():
        launch.env[MARKER] = str(root)
        launch.env[COMPONENT] = launch.name
    return plan


def _concurrency(spec: topology.FunctionSpec) -> int:
    return concurrency_for(spec.name, spec.max_concurrent_requests)


def _me() -> str:
    import getpass

    return getpass.getuser()


# The emulator lives minutes, not days: the C1 compiler alone and the serial collector make it
# ready in ~6 s instead of ~10 and cost ~2.5x less CPU for its first 1,500 pulls (C2's compiling
# was most of it), which every test sharing the machine's 2 cores pays for.
PUBSUB_JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


def gcs_root(root: Path) -> Path:
    """fake-gcs-server's filesystem backend under a stack's root: one folder per bucket."""
    return root / "gcs"


def _add_launches(plan: Plan, sshd_path: Path | None) -> None:
    p, root, py = plan.ports, plan.root, sys.executable
    url = "http://127.0.0.1:{}".format
    add = plan.launches.__setitem__
    add(
        "pubsub",
        Launch(
            "pubsub",
            p["pubsub"],
            [
                str(binaries.java()),
                *PUBSUB_JVM_FLAGS,
                "-jar",
                str(binaries.pubsub_jar()),
                "--host=127.0.0.1",
                f"--port={p['pubsub']}",
            ],
            url(p["pubsub"]) + "/",
            dict(os.environ),
        ),
    )
    add(
        "gcs",
        Launch(
            "gcs",
            p["gcs"],
            [
                str(binaries.fake_gcs_server()),
                *("-scheme", "http", "-host", "127.0.0.1", "-port", str(p["gcs"])),
                *("-external-url", url(p["gcs"]), "-backend", "filesystem", "-filesystem-root", str(gcs_root(root))),
                *("-event.pubsub-project-id", plan.config.project, "-event.pubsub-topic", GCS_NOTIFICATIONS),
                # Every bucket's events: the relay forwards those of the exports and mirrored buckets.
                *("-event.list", "finalize,delete,metadataUpdate"),
            ],
            url(p["gcs"]) + "/_internal/healthcheck",
            {**os.environ, "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{p['pubsub']}"},
        ),
    )
    if "bigquery" not in plan.without:
        _add_bigquery(plan)
    files = plan.sftp_files
    if plan.sftp_backend == "openssh":
        argv = sshd.argv(sshd_path, files)
        add(
            "sftp",
            Launch("sftp", p["sftp"], argv, f"ssh://127.0.0.1:{p['sftp']}", dict(os.environ), note=plan.sftp_note),
        )
    elif plan.sftp_backend == "asyncssh":
        argv = [py, "-m", "devstack.sftpserver", "--port", str(p["sftp"]), "--root", str(files.data)]
        argv += ["--authorized-key", str(files.user_key.with_suffix(".pub")), "--host-key", str(files.host_key)]
        argv += ["--posix-rename", "--no-chroot"]  # behave like OpenSSH internal-sftp -d DATA
        add("sftp", Launch("sftp", p["sftp"], argv, f"ssh://127.0.0.1:{p['sftp']}", _python_env(), note=plan.sftp_note))
    if "box" not in plan.without:
        argv = [py, "-m", "devstack.boxapi", "--host", "127.0.0.1", "--port", str(p["box"])]
        # The token file, never the token: argv is visible in `ps` and written to box.log.
        argv += ["--data-dir", str(root / "box"), "--developer-token-file", str(_box_token_path(root))]
        add("box", Launch("box", p["box"], argv, url(p["box"]) + "/health", _python_env()))
    if "drive" not in plan.without:
        argv = drivestack.argv(py, p["drive"], root / "drive")
        add("drive", Launch("drive", p["drive"], argv, url(p["drive"]) + "/health", _python_env()))
    if "webhook" not in plan.without:
        argv = [
            py,
            "-m",
            "devstack.webhook_sink",
            "--port",
            str(p["webhook"]),
            "--alerts-file",
            str(root / "alerts.jsonl"),
        ]
        add("webhook", Launch("webhook", p["webhook"], argv, url(p["webhook"]) + "/health", _python_env()))
    if any(topology.function(name).http for name in plan.functions):  # only the HTTP trigger checks tokens
        argv = [py, "-m", "devstack.oidc", "--port", str(p["oidc"]), "--root", str(root)]
        add("oidc", Launch("oidc", p["oidc"], argv, url(p["oidc"]) + "/health", _python_env()))
    argv = [py, "-m", "devstack.relay", "--port", str(p["relay"]), "--targets", str(root / "relay-targets.json")]
    add("relay", Launch("relay", p["relay"], argv, url(p["relay"]) + "/health", _python_env()))
    argv = [py, "-m", "devstack.push", "--root", str(root), "--pubsub", f"127.0.0.1:{p['pubsub']}"]
    argv += ["--project", plan.config.project, "--port", str(p["push"])]
    add("push", Launch("push", p["push"], argv, url(p["push"]) + "/health", _python_env()))
    functions_dir = Path(os.environ.get(ENV_FUNCTIONS_DIR) or REPO / "functions").absolute()
    for name in plan.functions:
        spec = topology.function(name)
        argv = [py, "-m", "functions_framework", f"--target={spec.entry_point}"]
        signature = "http" if spec.http else "cloudevent"
        argv += [f"--source={functions_dir / spec.source / 'main.py'}", f"--signature-type={signature}"]
        argv += ["--host=127.0.0.1", f"--port={p[name]}"]
        others = ",".join(f for f in plan.functions if f != name) or "none"
        fix = f"fix the error in the log below, or start the others only: --functions {others} (or --no-functions)"
        add(
            name,
            Launch(
                name,
                p[name],
                argv,
                url(p[name]) + "/",
                # One gunicorn thread per request the push may send at once (the deployed instances).
                _python_env({**plan.env, "K_SERVICE": name, "THREADS": str(_concurrency(spec))}),
                cwd=REPO,
                any_status=True,
                fix_if_dead=fix,
            ),
        )


def _bigquery_storage(bq_dir: Path) -> list[str]:
    """bqemulator's storage flags: in memory, or in a file when a memory limit is set."""
    limit = os.environ.get(ENV_BQ_MEMORY_LIMIT, "")
    if not limit:
        return ["--ephemeral"]
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", limit):
        raise StackError(f"{ENV_BQ_MEMORY_LIMIT}={limit!r} is not a size", "give a DuckDB size such as 4GB or 512MiB")
    return ["--persistent", "--data-dir", str(bq_dir / "duckdb")]


def _add_bigquery(plan: Plan) -> None:
    """bqemulator on its own ports, and the BigQuery front before it on the "bigquery" port."""
    p, py = plan.ports, sys.executable
    url = "http://127.0.0.1:{}".format
    bq_dir = plan.root / "bigquery"
    (bq_dir / "gcs").mkdir(parents=True, exist_ok=True)
    argv = [py, "-m", "devstack.bq_launcher", "start", "--rest-host", "127.0.0.1", "--rest-port", str(p["bqemulator"])]
    argv += ["--grpc-host", "127.0.0.1", "--grpc-port", str(p["bigquery_grpc"])]
    argv += ["--project", plan.config.project, "--log-level", "warning", *_bigquery_storage(bq_dir)]
    env = {
        "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
        "BQEMU_GCS_LOCAL_ROOT": str(bq_dir / "gcs"),
        "BQEMU_UPLOAD_STAGING_DIR": str(bq_dir / "uploads"),
        # Its Storage Read API sends up to 65,536 rows per message under this cap
        # (about 11 MiB by default): wide rows would fail the front's reads forever.
        "BQEMU_WRITE_API_MAX_REQUEST_BYTES": str(256 * 1024 * 1024),
    }
    plan.launches["bqemulator"] = Launch(
        "bqemulator",
        p["bqemulator"],
        argv,
        url(p["bqemulator"]) + "/readyz",
        _python_env(env),
        cwd=bq_dir,  # bqemulator reads .bqemu.toml from its working directory
        ports={"grpc": p["bigquery_grpc"]},
    )
    argv = [py, "-m", "devstack.bqfront", "--host", "127.0.0.1", "--port", str(p["bigquery"])]
    argv += ["--upstream", url(p["bqemulator"]), "--grpc", f"127.0.0.1:{p['bigquery_grpc']}"]
    argv += ["--shard-bytes", str(plan.config.shard_size_bytes), "--audit-topic", AUDIT_LOG_TOPIC]
    argv += ["--spool-dir", str(bq_dir / "spool")]
    plan.launches["bigquery"] = Launch(
        "bigquery",
        p["bigquery"],
        argv,
        url(p["bigquery"]) + "/readyz",  # forwarded: ready when bqemulator behind it is
        _python_env(
            {"STORAGE_EMULATOR_HOST": url(p["gcs"]), "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{p['pubsub']}"}
            | FRONT_ALLOCATOR
        ),
        note="BigQuery front (devstack/bqfront) before bqemulator",
    )
