"""Helpers of the Box tests around devstack.boxapi.BoxApiServer."""

from __future__ import annotations

import hashlib
import io
import json
import urllib.request
from typing import Any

from devstack.boxapi import BoxApiServer
from shared.config import BoxAuth, BoxDestination
from shared.destinations.box.destination import BoxDestination as BoxBackend
from shared.secrets import Secret


def api_get(server: BoxApiServer, path: str) -> Any:
    """GET ``/2.0{path}`` with the developer token: what Box reports, without our client in between."""
    request = urllib.request.Request(f"{server.base_url}/2.0{path}")
    request.add_header("Authorization", f"Bearer {server.token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def box_settings(server: BoxApiServer, root_folder_id: str, **overrides: object) -> BoxDestination:
    """The config's Box destination aimed at ``server`` (developer token unless ``auth`` is given)."""
    auth = overrides.pop("auth", None) or BoxAuth(method="developer_token", developer_token=Secret(server.token))
    return BoxDestination(
        root_folder_id=root_folder_id,
        auth=auth,  # type: ignore[arg-type]
        base_url=server.base_url,
        upload_url=server.upload_url,
        oauth_url=server.oauth2_url,
        **overrides,  # type: ignore[arg-type]
    )


def put_one_new_version(box: BoxBackend, server: BoxApiServer, path: str, data: bytes) -> None:
    """Put ``data`` over the file at ``path``: Box must hold it as the current version, with exactly
    one older version behind it (a retried or re-sent upload adds no second one)."""
    result = box.put(path, io.BytesIO(data), len(data))
    assert result.status == "new_version"
    remote = box.stat(path)
    assert remote is not None and remote.sha1 == hashlib.sha1(data).hexdigest()
    assert len(api_get(server, f"/files/{remote.remote_id}/versions")["entries"]) == 1


def api_put(server: BoxApiServer, path: str, body: dict[str, Any]) -> Any:
    """PUT ``/2.0{path}`` with a JSON body and the developer token (a Box user's change, e.g. a
    folder renamed: ``{"name": ...}``, or moved: ``{"parent": {"id": ...}}``)."""
    request = urllib.request.Request(f"{server.base_url}/2.0{path}", data=json.dumps(body).encode(), method="PUT")
    request.add_header("Authorization", f"Bearer {server.token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
