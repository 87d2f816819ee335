"""``offsite mirror check|reconcile|status|restore BUCKET``: GCS bucket mirrors (docs/mirror.md).

``check`` compares the bucket with its destinations here and now (nothing published, nothing
changed); ``reconcile`` publishes the ``mirror-reconciles`` request that Cloud Scheduler sends
on the entry's schedule, so the verify function compares, reports on ``verify-results`` and
fixes the difference (``--check-only``: report only); ``status`` shows each destination's last
reconcile from the run history (as the HTTP trigger's ``GET /mirror``); ``restore`` copies a
destination's copies back into GCS, checked (:mod:`shared.mirror.restore`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer

from offsite.cli.common import ConfigOption, exit_on_error, load_cli_config, new_app
from offsite.cli.ops import exit_with_checks
from offsite.cli.output import JsonOption, print_json, print_line, print_published, print_table
from shared.errors import RejectedInput

if TYPE_CHECKING:
    from shared.config import Config
    from shared.mirror.request import MirrorRequest
    from shared.mirror.restore import RestoredObject, RestoreStopped

app = new_app(no_args_is_help=True, help="GCS bucket mirrors: compare, reconcile and restore.")

BucketArg = Annotated[str, typer.Argument(help="A bucket of the config's buckets[].")]
DestinationOpt = Annotated[str | None, typer.Option("--destination", "-d", help="Only this destination.")]


@app.command()
def check(
    bucket: BucketArg, destination: DestinationOpt = None, as_json: JsonOption = False, config: ConfigOption = None
) -> None:
    """Compare the bucket with each destination now: missing, extra, size, hash (nothing is changed).

    Exit 0 when every destination is in sync, 1 otherwise (also when one cannot be reached now),
    2 for a bucket that is not mirrored.
    """
    from shared.destinations import factory
    from shared.mirror import reconcile
    from shared.mirror.request import MirrorRequest
    from shared.mirror.routing import reconcile_targets

    cfg = load_cli_config(config)
    with exit_on_error():
        request = MirrorRequest.from_obj({"bucket": bucket, "destination": destination})
        mirror, targets = reconcile_targets(request, cfg)
        objects = reconcile.selected_objects(mirror)
        checks = []
        for target in targets:
            with factory.opened(target, cfg) as dest:
                compared = reconcile.compare_bucket(mirror, objects, dest, download_hashes=cfg.verify.download_hashes)
            checks.append(reconcile.result_for(mirror, target, compared, (), ()))
    exit_with_checks(checks, as_json)


@app.command()
def reconcile(
    bucket: BucketArg,
    destination: DestinationOpt = None,
    check_only: Annotated[
        bool, typer.Option("--check-only", help="Report only; re-deliver and delete nothing.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Wait for each destination's result: exit 0 when every one is in_sync, else 1."),
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds --wait waits at most.")] = 900.0,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Ask the verify function to reconcile the bucket (as its schedule does); see `offsite mirror status`.

    The request carries a request id that each destination's result repeats. With --wait: exit 0
    once every destination reported this reconcile in_sync, 1 when one reported otherwise or the
    timeout passed. Exit 1 when the request could not be published, 2 for a bucket that is not
    mirrored or a destination that is not one of its own."""
    from shared.gcp import pubsub
    from shared.mirror.request import MirrorRequest
    from shared.mirror.routing import reconcile_targets
    from shared.topology import MIRROR_RECONCILES

    cfg = load_cli_config(config)
    with exit_on_error():
        request = MirrorRequest.from_obj(
            {"bucket": bucket, "destination": destination, "fix": not check_only, "request_id": _request_id()}
        )
        _, targets = reconcile_targets(request, cfg)  # a bucket not mirrored, a destination not its own: exit 2
        # a minute's slack for a result recorded by a host whose clock is behind ours
        since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        message_id = pubsub.publish(MIRROR_RECONCILES, request, origin="offsite-mirror")
    if not wait:
        print_published("mirror", MIRROR_RECONCILES, request, message_id, as_json)
        return
    if not as_json:
        print_line(f"published on {MIRROR_RECONCILES} (message {message_id}): {request.to_json().decode()}")
    published = {"message_id": message_id, "topic": MIRROR_RECONCILES, "request": request.to_dict()}
    raise typer.Exit(_wait_and_report(cfg, request, [str(t) for t in targets], since, published, timeout, as_json))


def _request_id() -> str:
    """The id this command's reconcile results repeat (``offsite mirror reconcile``'s own)."""
    import uuid

    return f"cli-{uuid.uuid4().hex[:20]}"


def _wait_and_report(
    cfg: Config,
    request: MirrorRequest,
    wanted: list[str],
    since: dt.datetime,
    published: dict[str, Any],
    timeout: float,
    as_json: bool,
) -> int:
    """Follow the reconcile until each destination in ``wanted`` has its outcome, a fix confirmed
    by a check (:mod:`shared.mirror.follow`); print it. The exit code: 0 when all are in_sync, else 1."""
    import time

    from offsite.cli.ops import print_checks
    from shared.gcp import pubsub
    from shared.mirror.follow import follow
    from shared.topology import MIRROR_RECONCILES

    followed = follow(
        cfg,
        request,
        wanted,
        since,
        wait=timeout,
        sleep=time.sleep,
        poll_s=1.0,
        publish=lambda check: pubsub.publish(MIRROR_RECONCILES, check, origin="offsite-mirror"),
    )
    ok = followed.in_sync(wanted)
    if as_json:
        fixed = {d: r.to_dict() for d, r in followed.fixed.items()}
        results = {d: r.to_dict() for d, r in followed.results.items()}
        print_json({**published, "complete": followed.complete, "in_sync": ok, "results": results, "fixed": fixed})
        return 0 if ok else 1
    for destination, fixing in followed.fixed.items():
        print_line(f"{destination}: {fixing.reason}; then checked again")
    if followed.results:
        print_checks([followed.results[d] for d in wanted if d in followed.results])
    late = [d for d in wanted if d not in followed.results]
    if followed.refused:
        typer.echo(f"error: the reconcile was started; {followed.unread}", err=True)
    elif late:
        typer.echo(f"error: no result of this reconcile from {', '.join(late)} after {timeout:.0f}s", err=True)
    elif not followed.complete:
        unconfirmed = ", ".join(d for d, r in followed.results.items() if r.status != "in_sync")
        typer.echo(f"error: the fix at {unconfirmed} was not confirmed in {timeout:.0f}s", err=True)
    if not ok:
        logs = f"offsite logs -f verify --run-id mirror-{request.bucket}"
        typer.echo(
            f"hint: `offsite mirror reconcile {request.bucket} --check-only --wait` checks again; "
            f"`offsite mirror status {request.bucket}` and `{logs}` say where it is",
            err=True,
        )
    return 0 if ok else 1


@app.command()
def status(
    bucket: Annotated[str | None, typer.Argument(help="Only this bucket of the config's buckets[].")] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=90, help="How far back to look for reconciles.")] = 7,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Each destination's last reconcile (status, when, what it found) and the next scheduled one.

    Exit 2 for a bucket that is not mirrored."""
    from shared.mirror.routing import mirrored
    from shared.mirror.status import status_row

    cfg = load_cli_config(config)
    with exit_on_error():
        mirrors = [mirrored(cfg, bucket)] if bucket else list(cfg.buckets)
        now = dt.datetime.now(dt.UTC)
        rows = [status_row(cfg, m, now, days) for m in mirrors]
    if as_json:
        print_json(rows)
        return
    if not rows:
        print_line("no buckets mirrored (config buckets[])")
        return
    cells = []
    for row in rows:
        for destination, last in row["destinations"].items():
            last = last or {"status": f"none in {days} days", "finished_at": None, "reason": None}
            cells.append(
                [row["bucket"], destination, last["status"], last["finished_at"], row["next_run"], last["reason"]]
            )
    print_table(("BUCKET", "DESTINATION", "LAST RECONCILE", "FINISHED", "NEXT RUN", "REASON"), cells)


@app.command()
def restore(
    bucket: BucketArg,
    source: Annotated[str, typer.Option("--from", help="The destination to restore from, e.g. box.")],
    to_bucket: Annotated[
        str | None, typer.Option("--to-bucket", help="Write the objects here (default: the mirrored bucket itself).")
    ] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Only objects whose name starts with this.")] = "",
    versions: Annotated[
        str | None,
        typer.Option(
            "--versions",
            help="YYYY-MM-DD: restore the copies retention kept that day (objects deleted then), not the live ones.",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Copies at once (an SFTP partner: at most its max_sessions).")
    ] = 4,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be restored; write nothing.")] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Restore the bucket's objects from a destination's copies, each checked against the size and
    hash the destination reports; an object that exists is never replaced.

    Exit 0 when every copy was restored (or existed already), 1 when one was damaged (its object
    is deleted again) or the destination or GCS failed (what was restored stays: run it again),
    2 for a bucket that is not mirrored or a destination that is not one of its own."""
    from shared.mirror.restore import DAMAGED

    target = to_bucket or bucket
    with exit_on_error():
        restored, stopped = _restore_bucket(
            load_cli_config(config),
            bucket,
            source,
            target,
            prefix=prefix,
            versions=versions,
            workers=workers,
            dry_run=dry_run,
        )
    if as_json:
        print_json([r.to_dict() for r in restored])
    else:
        _print_restored(restored, target, source, dry_run=dry_run, stopped=stopped is not None)
    if stopped is not None:  # after what it did: the error, as every command reports one
        with exit_on_error():
            raise stopped.cause
    raise typer.Exit(1 if any(r.status == DAMAGED for r in restored) else 0)


def _restore_bucket(
    cfg: Config,
    bucket: str,
    source: str,
    target: str,
    *,
    prefix: str,
    versions: str | None,
    workers: int,
    dry_run: bool,
) -> tuple[list[RestoredObject], RestoreStopped | None]:
    """The options checked, then :func:`restore_bucket`: what it restored, and what stopped it
    (what was restored before a failure is kept, to be printed before the error)."""
    from shared.destinations import factory
    from shared.mirror.request import MirrorRequest
    from shared.mirror.restore import RestoreStopped, restore_bucket
    from shared.mirror.routing import reconcile_targets

    asked = MirrorRequest.from_obj({"bucket": bucket, "destination": source})
    mirror, (destination,) = reconcile_targets(asked, cfg)
    if target in (cfg.bucket, cfg.state_bucket_name):
        raise RejectedInput(f"--to-bucket: {target!r} is offsite's own bucket; expected a bucket of your data")
    day = _day(versions)
    if destination.kind == "sftp":  # each worker holds a session of the partner's
        workers = min(workers, cfg.sftp_partner(destination.name).max_sessions)
    try:
        restored = restore_bucket(
            mirror,
            lambda: factory.opened(destination, cfg),
            target,
            prefix=prefix,
            dry_run=dry_run,
            versions_day=day,
            workers=workers,
        )
    except RestoreStopped as exc:
        return exc.results, exc
    return restored, None


def _day(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise RejectedInput(
            f"--versions: {text!r} is not a day; expected YYYY-MM-DD (a folder of _offsite_versions/)"
        ) from None


def _print_restored(
    restored: list[RestoredObject], target: str, source: str, *, dry_run: bool, stopped: bool = False
) -> None:
    """Every object (--dry-run), else those not restored; then one line of counts."""
    from offsite.cli.output import human_bytes, print_line, print_table
    from shared.mirror.restore import RESTORED

    shown = restored if dry_run else [r for r in restored if r.status != RESTORED]
    if shown:
        cells = [[r.name, r.size, r.status, r.check, r.reason] for r in shown]
        print_table(("OBJECT", "SIZE", "STATUS", "CHECK", "NOTE"), cells, right={"SIZE"})
    counts: dict[str, int] = {}
    for r in restored:
        counts[r.status] = counts.get(r.status, 0) + 1
    done = sum(r.size for r in restored if r.status == RESTORED)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or (
        "nothing" if stopped else "no copies found"
    )
    verb = "would restore" if dry_run else f"restored {human_bytes(done)}" + (" before it stopped" if stopped else "")
    print_line(f"{verb} from {source} into gs://{target}: {summary}")
