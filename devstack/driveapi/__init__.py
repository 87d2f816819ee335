"""A local Google Drive v3 API server (files, uploads, Shared Drives, OAuth), judged by
google-api-python-client: see docs/driveapi.md."""

from devstack.driveapi.server import DriveApiServer

__all__ = ["DriveApiServer"]
