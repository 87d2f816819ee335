"""The Drive backend tests use the Drive API tests' server fixtures (tests/driveapi/conftest.py)."""

from tests.driveapi.conftest import drive, drive_server

__all__ = ["drive", "drive_server"]
