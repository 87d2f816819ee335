"""Helpers of the Drive tests around devstack.driveapi.DriveApiServer: destination settings
for an OAuth user or a service account, and a folder of the test's own."""

from __future__ import annotations

import json
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.driveapi import DriveApiServer
from devstack.driveapi.server import CLIENT_ID, CLIENT_SECRET
from shared.config.drive import DriveAuth, DriveDestination
from shared.secrets import Secret

USER = "reports-owner@example.com"


def oauth_settings(
    server: DriveApiServer, folder_id: str, *, refresh_token: str | None = None, **overrides: Any
) -> DriveDestination:
    """The config's Drive destination aimed at ``server``, as the OAuth user :data:`USER`."""
    auth = DriveAuth(
        method="oauth",
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        refresh_token=Secret(refresh_token or server.refresh_token(USER)),
        token_uri=server.token_uri,
    )
    return DriveDestination(folder_id=folder_id, auth=auth, api_url=server.base_url, **overrides)


def service_account_key(server: DriveApiServer, email: str) -> str:
    """A new service account JSON key whose public half the server knows (token_uri: the server)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    server.add_service_account(email, public.decode())
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "offsite-test",
            "private_key_id": uuid.uuid4().hex,
            "private_key": pem.decode(),
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": server.token_uri,
        }
    )


def service_account_settings(
    server: DriveApiServer,
    shared_drive_id: str,
    email: str = "offsite@offsite-test.iam.gserviceaccount.com",
    **overrides: Any,
) -> DriveDestination:
    auth = DriveAuth(method="service_account", service_account_key=Secret(service_account_key(server, email)))
    return DriveDestination(shared_drive_id=shared_drive_id, auth=auth, api_url=server.base_url, **overrides)


def new_folder(server: DriveApiServer, principal: str = USER, parent: str = "root", **extra: str) -> str:
    """A fresh, uniquely named folder (in ``principal``'s My Drive unless ``parent`` says otherwise)."""
    service = server.service(server.access_token(principal))
    body = {"name": f"t-{uuid.uuid4().hex[:12]}", "mimeType": "application/vnd.google-apps.folder", "parents": [parent]}
    return str(service.files().create(body=body, fields="id", supportsAllDrives=True, **extra).execute()["id"])


def new_shared_drive(server: DriveApiServer) -> str:
    service = server.service(server.access_token(USER))
    return str(service.drives().create(requestId=uuid.uuid4().hex, body={"name": "offsite reports"}).execute()["id"])


def shared_drive_files(service: Any, drive_id: str, **params: Any) -> list[dict[str, Any]]:
    """The files the official Drive client lists in shared drive ``drive_id`` (``corpora=drive``
    with the flags it requires); ``params`` such as ``q`` and ``fields`` are passed on."""
    listed = service.files().list(
        corpora="drive", driveId=drive_id, includeItemsFromAllDrives=True, supportsAllDrives=True, **params
    )
    files: list[dict[str, Any]] = listed.execute()["files"]
    return files
