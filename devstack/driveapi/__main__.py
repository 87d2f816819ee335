"""Run the local Google Drive v3 API server.

    python -m devstack.driveapi --host 127.0.0.1 --port N --data-dir DIR [--token-ttl SECONDS]

Clients, refresh tokens and service accounts are registered through the admin API
(:class:`devstack.driveapi.server.DriveApiServer` does it) or read from ``--seed FILE`` (the
local stack's), so no secret is on the command line.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from devstack.local_api import argument_parser, serve

from .app import DriveApp


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("devstack.driveapi", "Local Google Drive v3 API server", "where file contents are kept")
    parser.add_argument("--seed", type=Path, help="JSON file of clients, refresh tokens, service accounts, drives")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    # One process, one event loop: metadata, sessions and faults live in memory.
    app = DriveApp(args.data_dir, args.token_ttl)
    if args.seed is not None:
        app.seed(json.loads(args.seed.read_text()))
    serve(app, args.host, args.port, args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
