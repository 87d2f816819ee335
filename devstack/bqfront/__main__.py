"""Run the BigQuery front.

    STORAGE_EMULATOR_HOST=http://127.0.0.1:G python -m devstack.bqfront --host 127.0.0.1 --port N \\
        --upstream http://127.0.0.1:R [--grpc 127.0.0.1:P] [--shard-bytes 4000000] [--log-level warning] \
        [--audit-topic bigquery-audit-log]   # with PUBSUB_EMULATOR_HOST: each finished job's audit-log entry
        [--spool-dir DIR]                    # shards on disk before upload; emptied at start
        [--max-running-jobs 8]               # the rest wait PENDING, as BigQuery queues jobs
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn

from devstack.bqfront.jobs import DEFAULT_MAX_RUNNING
from devstack.bqfront.routes import build_app
from devstack.bqfront.runner import clear_spool
from devstack.bqfront.server import FrontConfig

DEFAULT_SHARD_BYTES = 4 * 1024 * 1024


def parse_args(argv: list[str] | None = None) -> tuple[FrontConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m devstack.bqfront", description="Local BigQuery front")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="bqemulator's REST base URL")
    parser.add_argument("--grpc", default=None, help="bqemulator's gRPC host:port (Storage Read API for tables)")
    parser.add_argument("--shard-bytes", type=int, default=DEFAULT_SHARD_BYTES, help="file size for '*' URIs")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--audit-topic",
        default=None,
        help="Pub/Sub topic (PUBSUB_EMULATOR_HOST) for each finished job's audit-log entry",
    )
    parser.add_argument(
        "--spool-dir",
        type=Path,
        default=None,
        help="directory of this front's own for shards before upload (emptied at start; default: system temp)",
    )
    parser.add_argument(
        "--max-running-jobs",
        type=int,
        default=DEFAULT_MAX_RUNNING,
        help="the front's jobs RUNNING at once; the rest wait PENDING, as BigQuery queues jobs",
    )
    args = parser.parse_args(argv)
    if args.shard_bytes < 1:
        parser.error("--shard-bytes must be positive")
    if args.max_running_jobs < 1:
        parser.error(f"--max-running-jobs: {args.max_running_jobs} must be at least 1")
    config = FrontConfig(
        upstream=args.upstream,
        grpc=args.grpc,
        shard_size_bytes=args.shard_bytes,
        public_url=f"http://{args.host}:{args.port}",
        audit_topic=args.audit_topic,
        spool_dir=args.spool_dir,
        max_running_jobs=args.max_running_jobs,
    )
    return config, args


def main(argv: list[str] | None = None) -> None:
    config, args = parse_args(argv)
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        print("devstack.bqfront: STORAGE_EMULATOR_HOST must point at the GCS emulator", file=sys.stderr)
        sys.exit(2)
    # Job starts, ends and failures go to the log (the stack's .offsite/logs/bigquery.log).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.spool_dir is not None and (removed := clear_spool(config.spool_dir)):
        logging.getLogger("devstack.bqfront").info("removed %d spool files of an earlier run", removed)
    uvicorn.run(build_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
