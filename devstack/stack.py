"""Start, inspect and stop the local stack. The API other code and tests use.

    info = start_stack(root)                 # idempotent: a running stack is returned as is
    info.env, info.functions["verify"], info.sftp.port, ...
    stop_stack(root)                         # stops exactly the processes it started

Start order: the Pub/Sub emulator and every independent server are spawned at once; when
the emulator answers, topics, dead-letter topics and push subscriptions are created; then
fake-gcs-server (its notification topic must exist first, or it drops events silently) and
the exports bucket; then every component is health-checked. Any failure stops what was
started and raises StackError (one line: cause; fix) with the component's log tail.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from pathlib import Path

from devstack import health, procs, relay
from devstack import state as stack_state
from devstack.errors import StackError
from devstack.launches import AUDIT_LOG_TOPIC, GCS_NOTIFICATIONS, Launch
from devstack.plan import MARKER, Plan, make_plan
from devstack.pubsub_admin import PubSubAdmin, PushRetry
from devstack.push import routes as push_routes
from devstack.push import supervisor
from devstack.state import BoxInfo, ComponentInfo, SftpInfo, StackInfo
from shared import topology

__all__ = [
    "StackError",
    "StackInfo",
    "is_running",
    "load_stack",
    "restart_component",
    "start_stack",
    "status",
    "stop_stack",
]

DEFAULT_TIMEOUT_S = health.START_TIMEOUT_S
EARLY = (
    "pubsub",
    "bqemulator",
    "bigquery",
    "sftp",
    "box",
    "drive",
    "webhook",
    "relay",
    "oidc",
)  # spawned before topics exist


def load_stack(root: Path) -> StackInfo:
    """The stack recorded in ``<root>/stack.json`` (StackError if there is none)."""
    return stack_state.load(Path(root))


def is_running(info: StackInfo) -> bool:
    return info.state == "running" and all(procs.is_alive(c.pid, c.create_time) for c in info.components)


def status(root: Path) -> StackInfo:
    """The recorded stack with each component's health measured now."""
    info = load_stack(root)
    for comp in info.components:
        comp.health = health.live_health(comp)
    return info


def start_stack(
    root: Path,
    *,
    functions: bool | Collection[str] = True,
    without: Collection[str] = (),
    targets: Mapping[str, str] | None = None,
    config_overlay: Path | None = None,
    ports: Mapping[str, int] | None = None,
    sftp_backend: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> StackInfo:
    """Start the stack under ``root`` (or return the one already running there).

    ``functions``: True (all), False (none) or names from shared.topology.FUNCTIONS.
    ``without``: optional components to leave out ("bigquery", "sftp", "box", "drive", "webhook").
    ``targets``: function name → base URL that receives its events instead of (or without)
    a started function: GCS events via the relay, Pub/Sub pushes at URL/projects/P/topics/T.
    ``config_overlay``: YAML deep-merged over the generated config. ``ports``: pinned ports by
    component (also OFFSITE_DEV_PORT_<NAME>). ``sftp_backend``: auto | openssh | asyncssh.
    """
    root = Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    with supervisor.locked(root):
        try:
            current = load_stack(root)
        except StackError:
            current = None
        if current is not None and is_running(current):
            return current
        if current is not None and _repairable(current):
            return _repair(current, time.monotonic() + timeout_s)
        _stop_all(root, current)  # leftovers of a stack that died or of a start that was killed
        deadline = time.monotonic() + timeout_s
        for attempt in range(1, PORT_RACE_ATTEMPTS + 1):
            plan = make_plan(
                root,
                functions=functions,
                without=without,
                targets=targets,
                config_overlay=config_overlay,
                ports=ports,
                sftp_backend=sftp_backend,
            )
            try:
                return _launch(plan, deadline)
            except StackError as exc:
                # A port chosen free was taken before its server bound it (another process on the
                # machine): plan again with new ports. Pinned ports are the user's: no retry.
                if ports or attempt == PORT_RACE_ATTEMPTS or not _lost_port_race(exc):
                    raise
    raise AssertionError("unreachable")  # pragma: no cover


PORT_RACE_ATTEMPTS = 3
_IN_USE = ("address already in use", "address in use", "connection in use", "eaddrinuse", "errno 98")


def _lost_port_race(exc: StackError) -> bool:
    return any(marker in exc.log_tail.lower() for marker in _IN_USE)


def stop_stack(root: Path) -> list[str]:
    """Stop every process the stack at ``root`` started (with their children). Returns their names."""
    root = Path(root).absolute()
    if not root.is_dir():
        return []
    with supervisor.locked(root):
        try:
            info = load_stack(root)
        except StackError:
            info = None
        return _stop_all(root, info)


def _stop_all(root: Path, info: StackInfo | None) -> list[str]:
    stopped = _stop_recorded(info) if info else []
    stack_state.forget(root)
    # Processes of a start that was killed before it recorded them still carry the root.
    for proc in procs.marked(MARKER, str(root)):
        if procs.stop(proc.pid, procs.start_time(proc)):
            stopped.append(f"stray pid {proc.pid}")
    return stopped


def _stop_recorded(info: StackInfo) -> list[str]:
    # The push dispatcher first: its supervisor would restart the functions stopped next. The
    # rest together (functions, servers, the emulator): each exits on its own, and one by one
    # the dozen graceful shutdowns added up to 10-20 s per stack.
    push = [c for c in info.components if c.name == "push"]
    rest = [c for c in info.components if c.name != "push"]
    stopped = []
    for group in (push, rest):
        signalled = procs.stop_together([(c.pid, c.create_time) for c in group])
        stopped += [c.name for c, pids in zip(group, signalled, strict=True) if pids]
    return stopped


def _info(plan: Plan) -> StackInfo:
    p, files, box_url = plan.ports, plan.sftp_files, f"http://127.0.0.1:{plan.ports['box']}"
    return StackInfo(
        root=plan.root,
        project=plan.config.project,
        bucket=plan.config.bucket,
        state_bucket=plan.config.state_bucket_name,
        env=plan.env,
        config_path=plan.root / "config.yaml",
        pubsub_host=f"127.0.0.1:{p['pubsub']}",
        gcs_url=f"http://127.0.0.1:{p['gcs']}",
        bigquery_url=f"http://127.0.0.1:{p['bigquery']}",
        bqemulator_url=f"http://127.0.0.1:{p['bqemulator']}",
        bigquery_grpc=f"127.0.0.1:{p['bigquery_grpc']}",
        bigquery_extract_dir=plan.root / "bigquery" / "gcs",
        sftp=SftpInfo(
            host="127.0.0.1",
            port=p["sftp"],
            username=plan.sftp_user,
            key_path=files.user_key,
            known_hosts_path=files.known_hosts,
            directory=files.data.absolute(),
            backend=plan.sftp_backend,
            host_key_path=files.host_key,
            note=plan.sftp_note,
        ),
        box=BoxInfo(box_url, f"{box_url}/api", f"{box_url}/oauth2", plan.box_token, plan.root / "box"),
        drive_url="" if "drive" in plan.without else f"http://127.0.0.1:{p['drive']}",
        webhook_url=f"http://127.0.0.1:{p['webhook']}/hook",
        webhook_messages_url=f"http://127.0.0.1:{p['webhook']}/messages",
        alerts_file=plan.root / "alerts.jsonl",
        relay_url=f"http://127.0.0.1:{p['relay']}",
        gcs_notification_topic=GCS_NOTIFICATIONS,
        functions={name: f"http://127.0.0.1:{p[name]}" for name in plan.functions},
        dead_letter_subscriptions={s.name: f"{s.dead_letter_topic}-sub" for s in topology.subscriptions()},
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def _spawn(info: StackInfo, launch: Launch, logs: Path) -> ComponentInfo:
    log = logs / f"{launch.name}.log"
    spawned = procs.spawn(launch.name, launch.argv, log=log, env=launch.env, cwd=launch.cwd)
    comp = ComponentInfo(
        name=launch.name,
        port=launch.port,
        pid=spawned.pid,
        create_time=spawned.create_time,
        health_url=launch.health_url,
        log=str(log),
        note=launch.note,
        any_status=launch.any_status,
        ports=launch.ports,
    )
    info.components.append(comp)
    stack_state.save(info)  # recorded at once, so `down` finds it even if this start is killed
    return comp


def _launch(plan: Plan, deadline: float) -> StackInfo:
    info = _info(plan)
    relay.write_targets(plan.root / "relay-targets.json", _relay_targets(plan))
    relay.write_buckets(plan.root / relay.BUCKETS_FILE, plan.config.bucket, [b.name for b in plan.config.buckets])
    supervisor.save_launches(plan.root, plan.launches)
    stack_state.save(info)
    try:
        for name in [*EARLY, *plan.functions]:
            if name in plan.launches:
                _spawn(info, plan.launches[name], plan.logs)
        health.wait_ready(info.component("pubsub"), deadline, "check that Java 11+ runs: java -version")
        push_routes.write_routes(plan.root, _create_pubsub_resources(plan))
        _spawn(info, plan.launches["push"], plan.logs)  # delivers the subscriptions just created
        gcs = _spawn(info, plan.launches["gcs"], plan.logs)
        health.wait_ready(gcs, deadline, "see the log tail below")
        _create_bucket(info, *(b.name for b in plan.config.buckets))
        for comp in info.components:
            if comp.health != "ok":
                launch = plan.launches[comp.name]
                health.wait_ready(comp, deadline, launch.fix_if_dead)
        order = [*EARLY[:1], "gcs", *EARLY[1:], "push", *plan.functions]
        info.components.sort(key=lambda c: order.index(c.name))
        info.state = "running"
        stack_state.save(info)
        stack_state.write_env_file(info)
        return info
    except BaseException:
        _stop_all(plan.root, info)
        raise


def _repairable(info: StackInfo) -> bool:
    """A started stack whose emulator still answers: restart only what died, keep Pub/Sub state."""
    if info.state != "running" or not supervisor.load_launches(info.root):
        return False
    try:
        pubsub = info.component("pubsub")
    except KeyError:
        return False
    return health.live_health(pubsub) == "ok"


def _repair(info: StackInfo, deadline: float) -> StackInfo:
    """Start again every dead component of a running stack (same ports); the emulator is healthy."""
    for comp in info.components:
        if not procs.is_alive(comp.pid, comp.create_time):
            supervisor.respawn(info, comp.name, timeout_s=max(1.0, deadline - time.monotonic()))
    for comp in info.components:
        comp.health = health.live_health(comp)
    return info


def restart_component(root: Path, name: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> StackInfo:
    """Stop one component of the running stack and start it again on its port (``offsite dev restart``).

    Not the emulator: its state (topics, subscriptions, messages) lives in memory only.
    """
    root = Path(root).absolute()
    with supervisor.locked(root):
        info = load_stack(root)
        if name == "pubsub":
            raise StackError("restarting pubsub would lose every topic, subscription and message", "use dev down/up")
        try:
            info.component(name)
        except KeyError as exc:
            raise StackError(str(exc).strip("'\""), "see `offsite dev status` for the names") from None
        supervisor.respawn(info, name, timeout_s=timeout_s)
        return info


def _relay_targets(plan: Plan) -> dict[str, str]:
    """Functions with Eventarc triggers (GCS finalize, BigQuery audit log): the relay delivers to them."""
    eventarc_functions = {s.function for s in topology.subscriptions() if s.trigger.kind in ("gcs", "auditlog")}
    return {f: url for f, url in plan.targets.items() if f in eventarc_functions}


def _create_pubsub_resources(plan: Plan) -> list[push_routes.Route]:
    """Topics, dead-letter topics with their pull subscriptions, and the subscriptions the push
    dispatcher delivers (returned as its routes).

    The emulator's subscriptions are pull subscriptions with the dead-letter policy (so it counts
    ``deliveryAttempt``) and no retry policy: the dispatcher applies the backoff itself.
    """
    cfg = plan.config
    admin = PubSubAdmin(f"127.0.0.1:{plan.ports['pubsub']}", cfg.project)
    for topic in (GCS_NOTIFICATIONS, AUDIT_LOG_TOPIC, *topology.TOPICS):
        admin.create_topic(topic)
    retry = PushRetry(cfg.pubsub.minimum_backoff_s, cfg.pubsub.maximum_backoff_s, cfg.pubsub.max_delivery_attempts)
    relay_url = f"http://127.0.0.1:{plan.ports['relay']}"
    routes = []
    for sub in topology.subscriptions():
        admin.create_topic(sub.dead_letter_topic)  # must exist before a subscription names it
        admin.create_subscription(f"{sub.dead_letter_topic}-sub", sub.dead_letter_topic)
        target = plan.targets.get(sub.function)
        if target is None:
            continue  # neither started nor redirected: nobody to deliver to
        if sub.trigger.kind == "gcs":
            topic, endpoint = GCS_NOTIFICATIONS, f"{relay_url}/to/{sub.function}"
        elif sub.trigger.kind == "auditlog":
            topic, endpoint = AUDIT_LOG_TOPIC, f"{relay_url}/auditlog/to/{sub.function}"
        else:
            topic = sub.trigger.topic or ""
            # The path carries the topic into the CloudEvent source (functions-framework reads it).
            endpoint = f"{target.rstrip('/')}/projects/{cfg.project}/topics/{topic}"
        routes.append(_push_route(admin, retry, sub.name, topic, sub.function, endpoint, sub.dead_letter_topic))
    routes += _dead_letter_report_routes(plan, admin, retry)
    push_url = f"http://127.0.0.1:{plan.ports['push']}"
    for topic in sorted({r.topic for r in routes}):  # wake the dispatcher's pulls (devstack/push/dispatcher.py)
        admin.create_subscription(
            push_routes.DOORBELL_PREFIX + topic, topic, push_endpoint=f"{push_url}/doorbell/{topic}"
        )
    return routes


def _push_route(
    admin: PubSubAdmin, retry: PushRetry, name: str, topic: str, function: str, endpoint: str, dead_letter_topic: str
) -> push_routes.Route:
    """The emulator's (pull) subscription and the dispatcher's route that pushes it to ``endpoint``."""
    spec = topology.function(function)
    ack_deadline = min(600, max(10, spec.timeout_s))
    admin.create_subscription(
        name, topic, retry=retry, dead_letter_topic=dead_letter_topic, ack_deadline_s=ack_deadline, retry_policy=False
    )
    return push_routes.Route(
        subscription=name,
        function=function,
        endpoint=endpoint,
        dead_letter_topic=dead_letter_topic,
        ack_deadline_s=ack_deadline,
        minimum_backoff_s=retry.minimum_backoff_s,
        maximum_backoff_s=retry.maximum_backoff_s,
        max_delivery_attempts=retry.max_delivery_attempts,
        concurrency=push_routes.concurrency_for(function, spec.max_concurrent_requests),
        topic=topic,
    )


def _dead_letter_report_routes(plan: Plan, admin: PubSubAdmin, retry: PushRetry) -> list[push_routes.Route]:
    """Each dead-letter topic also pushes to verify, which reports the message as ``failed``
    (shared/stages/dead_letters.py); a report that keeps failing ends on one last topic."""
    target = plan.targets.get(topology.DEAD_LETTER_REPORTER)
    last = topology.REPORTS_DEAD_LETTER_TOPIC
    admin.create_topic(last)
    admin.create_subscription(f"{last}-sub", last)
    if target is None:
        return []
    base = f"{target.rstrip('/')}/projects/{plan.config.project}/topics"
    return [
        _push_route(admin, retry, r.name, r.topic, r.function, f"{base}/{r.topic}", last)
        for r in topology.dead_letter_reports()
    ]


def _create_bucket(info: StackInfo, *mirrored: str) -> None:
    """The exports bucket and the mirrored buckets (their object events reach the functions
    through the relay, which drops the others) and the state bucket."""
    for name in (info.bucket, info.state_bucket, *mirrored):
        body = json.dumps({"name": name}).encode()
        req = urllib.request.Request(f"{info.gcs_url}/storage/v1/b?project={info.project}", data=body, method="POST")
        req.add_header("content-type", "application/json")
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # 409: kept from an earlier run (filesystem backend)
                raise StackError(f"gcs: creating bucket {name} answered {exc.code}", "see the gcs log") from None
