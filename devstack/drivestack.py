"""The local stack's Google Drive: the Drive v3 server (devstack/driveapi) and destination
``drive:reports`` in the generated config.

The stack's OAuth client and one user's refresh token are made once per stack root (files
under ``<root>/drive``, mode 0600) and given to the server as its ``--seed``; the config names
them as ``file:`` secrets, so no credential is on a command line or in the config itself.
``drive:reports`` writes into that user's My Drive root.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from devstack.driveapi.server import CLIENT_ID

DESTINATION = "reports"
PRINCIPAL = "reports@offsite.local"


def _secret_file(path: Path) -> str:
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(("1//local-" if path.name == "refresh_token" else "") + secrets.token_urlsafe(24))
    return path.read_text().strip()


def prepare(root: Path) -> Path:
    """``<root>/drive``: the client secret, the refresh token and the server's seed file."""
    folder = root / "drive"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    client_secret = _secret_file(folder / "client_secret")
    refresh_token = _secret_file(folder / "refresh_token")
    seed = {
        "clients": {CLIENT_ID: client_secret},
        "refresh_tokens": {refresh_token: {"client_id": CLIENT_ID, "principal": PRINCIPAL}},
    }
    path = folder / "seed.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(seed, out)
    return folder


def argv(python: str, port: int, folder: Path) -> list[str]:
    return [
        python,
        "-m",
        "devstack.driveapi",
        "--port",
        str(port),
        "--data-dir",
        str(folder / "data"),
        "--seed",
        str(folder / "seed.json"),
    ]


def destination(port: int, folder: Path) -> dict[str, Any]:
    """``destinations.drive.reports`` of the generated config."""
    url = f"http://127.0.0.1:{port}"
    return {
        "folder_id": "root",
        "api_url": url,
        "auth": {
            "method": "oauth",
            "client_id": CLIENT_ID,
            "client_secret": f"file:{folder / 'client_secret'}",
            "refresh_token": f"file:{folder / 'refresh_token'}",
            "token_uri": f"{url}/token",
        },
    }
