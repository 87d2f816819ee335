"""``offsite mirror check|reconcile BUCKET``: GCS bucket mirrors (docs/mirror.md).

``check`` compares the bucket with its destinations here and now (nothing published, nothing
changed); ``reconcile`` publishes the ``mirror-reconciles`` request that Cloud Scheduler sends
on the entry's schedule, so the verify function compares, reports on ``verify-results`` and
fixes the difference (``--check-only``: report only).
"""

from __future__ import annotations

from typing import Annotated

import typer

from offsite.cli.common import ConfigOption, exit_on_error, load_cli_config, new_app
from offsite.cli.ops import exit_with_checks
from offsite.cli.output import JsonOption, print_published
from shared.errors import RejectedInput

app = new_app(no_args_is_help=True, help="GCS bucket mirrors: compare and reconcile.")

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

    cfg = load_cli_config(config)
    with exit_on_error():
        mirror, targets = reconcile.plan(MirrorRequest.from_obj({"bucket": bucket, "destination": destination}), cfg)
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
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Ask the verify function to reconcile the bucket (as its schedule does); see `offsite status`.

    Exit 1 when the request could not be published, 2 for a bucket that is not mirrored."""
    from shared.gcp import pubsub
    from shared.mirror.request import MirrorRequest
    from shared.topology import MIRROR_RECONCILES

    cfg = load_cli_config(config)
    with exit_on_error():
        request = MirrorRequest.from_obj({"bucket": bucket, "destination": destination, "fix": not check_only})
        if cfg.mirror(bucket) is None:
            known = ", ".join(b.name for b in cfg.buckets) or "none"
            raise RejectedInput(f"bucket {bucket!r} is not mirrored (buckets[] in the config: {known})")
        message_id = pubsub.publish(MIRROR_RECONCILES, request, origin="offsite-mirror")
    print_published("mirror", MIRROR_RECONCILES, request, message_id, as_json)
