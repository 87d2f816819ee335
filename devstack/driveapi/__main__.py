"""Run the local Google Drive v3 API server.

    python -m devstack.driveapi --host 127.0.0.1 --port N --data-dir DIR [--token-ttl SECONDS]

Clients, refresh tokens and service accounts are registered through the admin API
(:class:`devstack.driveapi.server.DriveApiServer` does it) or read from ``--seed FILE`` (the
local stack's), so no secret is on the command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import uvicorn

from .app import DriveApp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.driveapi", description="Local Google Drive v3 API server")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--data-dir", type=Path, required=True, help="where file contents are kept")
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="lifetime of issued access tokens, seconds")
    parser.add_argument("--seed", type=Path, help="JSON file of clients, refresh tokens, service accounts, drives")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    # One process, one event loop: metadata, sessions and faults live in memory.
    app = DriveApp(args.data_dir, args.token_ttl)
    if args.seed is not None:
        app.seed(json.loads(args.seed.read_text()))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        lifespan="on",
        log_level=args.log_level,
        access_log=False,
        timeout_keep_alive=75,
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
