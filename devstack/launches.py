"""How each component of the local stack is started: its command, environment and health check.

``launches_for`` turns a :class:`devstack.plan.Plan` into one :class:`Launch` per component, in
start order (emulators, BigQuery, servers, relay and push, then the functions).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devstack import binaries, bq_launcher, drivestack, sshd
from devstack.errors import StackError
from devstack.push.routes import concurrency_for
from shared import topology

if TYPE_CHECKING:
    from devstack.plan import Plan

REPO = Path(__file__).resolve().parent.parent
GCS_NOTIFICATIONS = "gcs-notifications"
AUDIT_LOG_TOPIC = "bigquery-audit-log"  # the BigQuery front's job audit-log entries (Eventarc's feed)
# bqemulator keeps every table in memory unless this is set (a DuckDB size such as "4GB"): then
# it stores them in a file under the stack root and holds at most that much in memory.
ENV_BQ_MEMORY_LIMIT = bq_launcher.ENV_MEMORY_LIMIT
ENV_FUNCTIONS_DIR = "OFFSITE_DEV_FUNCTIONS_DIR"  # run functions/<source>/main.py from another tree
# The front's allocator: Arrow's buffers from malloc (not Arrow's jemalloc, which keeps freed
# pages a while) and one malloc arena for all its threads (gRPC's, the HTTP server's, the shard
# sender's), so each batch reuses what the last one freed. A 2 M-row export peaked at +111-126 MB
# in-process without, +48-55 MB with, at the same speed.
FRONT_ALLOCATOR = {"ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_ARENA_MAX": "1"}
# The emulator lives minutes, not days: the C1 compiler alone and the serial collector make it
# ready in ~6 s instead of ~10 and cost ~2.5x less CPU for its first 1,500 pulls (C2's compiling
# was most of it), which every test sharing the machine's 2 cores pays for.
PUBSUB_JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


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


def gcs_root(root: Path) -> Path:
    """fake-gcs-server's filesystem backend under a stack's root: one folder per bucket."""
    return root / "gcs"


def box_token_path(root: Path) -> Path:
    return root / "box" / "developer_token"


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment, with the repository importable and ``extra`` on top."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def launches_for(plan: Plan, sshd_path: Path | None) -> dict[str, Launch]:
    """Every component the plan starts, by name, in start order."""
    parts = (_emulators(plan), _bigquery(plan), _sftp(plan, sshd_path), _servers(plan), _plumbing(plan))
    chosen = [launch for part in parts for launch in part] + [_function(plan, name) for name in plan.functions]
    return {launch.name: launch for launch in chosen}


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _emulators(plan: Plan) -> Iterator[Launch]:
    p = plan.ports
    java = [str(binaries.java()), *PUBSUB_JVM_FLAGS, "-jar", str(binaries.pubsub_jar())]
    argv = [*java, "--host=127.0.0.1", f"--port={p['pubsub']}"]
    yield Launch("pubsub", p["pubsub"], argv, _url(p["pubsub"]) + "/", dict(os.environ))
    argv = [
        str(binaries.fake_gcs_server()),
        *("-scheme", "http", "-host", "127.0.0.1", "-port", str(p["gcs"])),
        *("-external-url", _url(p["gcs"]), "-backend", "filesystem", "-filesystem-root", str(gcs_root(plan.root))),
        *("-event.pubsub-project-id", plan.config.project, "-event.pubsub-topic", GCS_NOTIFICATIONS),
        # Every bucket's events: the relay forwards those of the exports and mirrored buckets.
        *("-event.list", "finalize,delete,metadataUpdate"),
    ]
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{p['pubsub']}"}
    yield Launch("gcs", p["gcs"], argv, _url(p["gcs"]) + "/_internal/healthcheck", env)


def _sftp(plan: Plan, sshd_path: Path | None) -> Iterator[Launch]:
    p, files = plan.ports, plan.sftp_files
    health = f"ssh://127.0.0.1:{p['sftp']}"
    if plan.sftp_backend == "openssh":
        yield Launch("sftp", p["sftp"], sshd.argv(sshd_path, files), health, dict(os.environ), note=plan.sftp_note)
    elif plan.sftp_backend == "asyncssh":
        argv = [sys.executable, "-m", "devstack.sftpserver", "--port", str(p["sftp"]), "--root", str(files.data)]
        argv += ["--authorized-key", str(files.user_key.with_suffix(".pub")), "--host-key", str(files.host_key)]
        argv += ["--posix-rename", "--no-chroot"]  # behave like OpenSSH internal-sftp -d DATA
        yield Launch("sftp", p["sftp"], argv, health, python_env(), note=plan.sftp_note)


def _servers(plan: Plan) -> Iterator[Launch]:
    """The stand-ins for Box, Drive, the alert webhook and (for the HTTP trigger) an OIDC issuer."""
    p, root, py = plan.ports, plan.root, sys.executable
    argvs: dict[str, list[str]] = {}
    if "box" not in plan.without:
        argvs["box"] = [py, "-m", "devstack.boxapi", "--host", "127.0.0.1", "--port", str(p["box"])]
        # The token file, never the token: argv is visible in `ps` and written to box.log.
        argvs["box"] += ["--data-dir", str(root / "box"), "--developer-token-file", str(box_token_path(root))]
    if "drive" not in plan.without:
        argvs["drive"] = drivestack.argv(py, p["drive"], root / "drive")
    if "webhook" not in plan.without:
        argvs["webhook"] = [py, "-m", "devstack.webhook_sink", "--port", str(p["webhook"])]
        argvs["webhook"] += ["--alerts-file", str(root / "alerts.jsonl")]
    if any(topology.function(name).http for name in plan.functions):  # only the HTTP trigger checks tokens
        argvs["oidc"] = [py, "-m", "devstack.oidc", "--port", str(p["oidc"]), "--root", str(root)]
    for name, argv in argvs.items():
        yield Launch(name, p[name], argv, _url(p[name]) + "/health", python_env())


def _plumbing(plan: Plan) -> Iterator[Launch]:
    """The relay (GCS and audit-log events to functions) and the push (Pub/Sub to functions)."""
    p, root, py = plan.ports, plan.root, sys.executable
    argv = [py, "-m", "devstack.relay", "--port", str(p["relay"]), "--targets", str(root / "relay-targets.json")]
    yield Launch("relay", p["relay"], argv, _url(p["relay"]) + "/health", python_env())
    argv = [py, "-m", "devstack.push", "--root", str(root), "--pubsub", f"127.0.0.1:{p['pubsub']}"]
    argv += ["--project", plan.config.project, "--port", str(p["push"])]
    yield Launch("push", p["push"], argv, _url(p["push"]) + "/health", python_env())


def _function(plan: Plan, name: str) -> Launch:
    """One function under functions-framework, as its deployed instances run."""
    spec, port = topology.function(name), plan.ports[name]
    functions_dir = Path(os.environ.get(ENV_FUNCTIONS_DIR) or REPO / "functions").absolute()
    argv = [sys.executable, "-m", "functions_framework", f"--target={spec.entry_point}"]
    signature = "http" if spec.http else "cloudevent"
    argv += [f"--source={functions_dir / spec.source / 'main.py'}", f"--signature-type={signature}"]
    argv += ["--host=127.0.0.1", f"--port={port}"]
    others = ",".join(f for f in plan.functions if f != name) or "none"
    # One gunicorn thread per request the push may send at once (the deployed instances).
    threads = concurrency_for(spec.name, spec.max_concurrent_requests)
    return Launch(
        name,
        port,
        argv,
        _url(port) + "/",
        python_env({**plan.env, "K_SERVICE": name, "THREADS": str(threads)}),
        cwd=REPO,
        any_status=True,
        fix_if_dead=f"fix the error in the log below, or start the others only: --functions {others} (or --no-functions)",
    )


def bigquery_storage(bq_dir: Path) -> list[str]:
    """bqemulator's storage flags: in memory, or in a file when a memory limit is set."""
    limit = os.environ.get(ENV_BQ_MEMORY_LIMIT, "")
    if not limit:
        return ["--ephemeral"]
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", limit):
        raise StackError(f"{ENV_BQ_MEMORY_LIMIT}={limit!r} is not a size", "give a DuckDB size such as 4GB or 512MiB")
    return ["--persistent", "--data-dir", str(bq_dir / "duckdb")]


def _bigquery(plan: Plan) -> Iterator[Launch]:
    """bqemulator on its own ports, and the BigQuery front before it on the "bigquery" port."""
    if "bigquery" in plan.without:
        return
    p, py = plan.ports, sys.executable
    bq_dir = plan.root / "bigquery"
    (bq_dir / "gcs").mkdir(parents=True, exist_ok=True)
    argv = [py, "-m", "devstack.bq_launcher", "start", "--rest-host", "127.0.0.1", "--rest-port", str(p["bqemulator"])]
    argv += ["--grpc-host", "127.0.0.1", "--grpc-port", str(p["bigquery_grpc"])]
    argv += ["--project", plan.config.project, "--log-level", "warning", *bigquery_storage(bq_dir)]
    env = {
        "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
        "BQEMU_GCS_LOCAL_ROOT": str(bq_dir / "gcs"),
        "BQEMU_UPLOAD_STAGING_DIR": str(bq_dir / "uploads"),
        # Its Storage Read API sends up to 65,536 rows per message under this cap
        # (about 11 MiB by default): wide rows would fail the front's reads forever.
        "BQEMU_WRITE_API_MAX_REQUEST_BYTES": str(256 * 1024 * 1024),
    }
    yield Launch(
        "bqemulator",
        p["bqemulator"],
        argv,
        _url(p["bqemulator"]) + "/readyz",
        python_env(env),
        cwd=bq_dir,  # bqemulator reads .bqemu.toml from its working directory
        ports={"grpc": p["bigquery_grpc"]},
    )
    argv = [py, "-m", "devstack.bqfront", "--host", "127.0.0.1", "--port", str(p["bigquery"])]
    argv += ["--upstream", _url(p["bqemulator"]), "--grpc", f"127.0.0.1:{p['bigquery_grpc']}"]
    argv += ["--shard-bytes", str(plan.config.shard_size_bytes), "--audit-topic", AUDIT_LOG_TOPIC]
    argv += ["--spool-dir", str(bq_dir / "spool")]
    front_env = {"STORAGE_EMULATOR_HOST": _url(p["gcs"]), "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{p['pubsub']}"}
    yield Launch(
        "bigquery",
        p["bigquery"],
        argv,
        _url(p["bigquery"]) + "/readyz",  # forwarded: ready when bqemulator behind it is
        python_env(front_env | FRONT_ALLOCATOR),
        note="BigQuery front (devstack/bqfront) before bqemulator",
    )
