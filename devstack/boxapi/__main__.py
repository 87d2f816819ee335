"""Run the local Box API server.

    python -m devstack.boxapi --host 127.0.0.1 --port N --data-dir DIR \\
        [--developer-token-file PATH] [--client-id ID] \\
        [--jwt-public-key PEM_PATH [--jwt-key-id KID]] [--enterprise-id E] [--token-ttl SECONDS]

Secrets never go on the command line (``ps`` shows it to every user, and the stack logs each
command it starts): the developer token comes from ``--developer-token-file`` or the environment
variable ``BOXAPI_DEVELOPER_TOKEN``, the client secret from ``BOXAPI_CLIENT_SECRET``.
``--developer-token`` / ``--client-secret`` still work for a quick manual run.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from devstack.local_api import argument_parser, serve

from .config import AppCredentials, ServerConfig
from .db import DataDirBusy
from .factory import build_app

ENV_DEVELOPER_TOKEN = "BOXAPI_DEVELOPER_TOKEN"
ENV_CLIENT_SECRET = "BOXAPI_CLIENT_SECRET"


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    parser = argument_parser("devstack.boxapi", "Local Box API server", "where files and metadata are kept")
    parser.add_argument("--developer-token", help="a Bearer token accepted as the developer user (visible in ps)")
    parser.add_argument("--developer-token-file", type=Path, help="file holding the developer token")
    parser.add_argument("--client-id", help="client id of a platform app (JWT / client credentials)")
    parser.add_argument("--client-secret", help="client secret of that app")
    parser.add_argument("--jwt-public-key", type=Path, help="PEM public key that verifies the app's JWT assertions")
    parser.add_argument("--jwt-key-id", default="*", help="kid of that key ('*' accepts any kid; default)")
    parser.add_argument("--enterprise-id", default="900000001", help="enterprise id of the app's service account")
    parser.add_argument("--session-ttl", type=float, default=7 * 24 * 3600.0, help="upload session lifetime, seconds")
    parser.add_argument("--commit-wait", type=float, default=30.0, help="seconds a commit waits before answering 202")
    args = parser.parse_args(argv)
    if args.developer_token_file is not None:
        args.developer_token = args.developer_token_file.read_text().strip()
    args.developer_token = args.developer_token or os.environ.get(ENV_DEVELOPER_TOKEN) or None
    args.client_secret = args.client_secret or os.environ.get(ENV_CLIENT_SECRET) or None
    if (args.client_id is None) != (args.client_secret is None):
        parser.error("--client-id and --client-secret go together")
    if args.jwt_public_key is not None and args.client_id is None:
        parser.error("--jwt-public-key needs --client-id/--client-secret (the app the key belongs to)")
    apps = []
    if args.client_id is not None:
        keys = {}
        if args.jwt_public_key is not None:
            keys[args.jwt_key_id] = args.jwt_public_key.read_text()
        apps.append(AppCredentials(args.client_id, args.client_secret, args.enterprise_id, keys))
    return ServerConfig(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        developer_token=args.developer_token,
        enterprise_id=args.enterprise_id,
        apps=apps,
        token_ttl_s=args.token_ttl,
        session_ttl_s=args.session_ttl,
        commit_wait_s=args.commit_wait,
        log_level=args.log_level,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        app = build_app(config)
    except DataDirBusy as exc:
        print(f"boxapi: {exc}", file=sys.stderr)
        return 2
    # One process, one event loop: state (faults, sessions in progress) lives in memory;
    # file hashing and writes run in worker threads so parallel parts use several cores.
    serve(app, config.host, config.port, config.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
