"""A local Box API server for the devstack, checked against the official box-sdk-gen client.

Run it with ``python -m devstack.boxapi --port N --data-dir DIR``; from Python use
:class:`BoxApiServer`. What it implements and where it simplifies: docs/boxapi.md.
"""

from devstack.boxapi.server import AdminError, BoxApiServer

__all__ = ["AdminError", "BoxApiServer"]
