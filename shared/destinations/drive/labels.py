"""Labels (the Labelled ability) as Drive ``appProperties``, within Drive's documented limits.

Drive allows at most 124 bytes for one property's key plus value (UTF-8) and 30 private
properties per app on a file. A value that does not fit is stored as ``sha256:<hex>`` of it
(71 bytes), and lookups hash it the same way, so a long partner path still identifies its copy.
A key too long to fit even then, or too many labels, is the caller's bug: ValueError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from shared.destinations.drive.folders import quoted

MAX_PROPERTY_BYTES = 124
MAX_APP_PROPERTIES = 30
_HASHED = "sha256:"


def app_properties(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` as Drive stores them (see the module docstring)."""
    if len(labels) > MAX_APP_PROPERTIES:
        raise ValueError(f"{len(labels)} labels; Drive keeps at most {MAX_APP_PROPERTIES} appProperties per app")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if len(f"{key}{value}".encode()) > MAX_PROPERTY_BYTES:
            value = _HASHED + hashlib.sha256(value.encode()).hexdigest()
            if len(f"{key}{value}".encode()) > MAX_PROPERTY_BYTES:
                raise ValueError(f"label key {key!r} is too long for a Drive appProperty ({MAX_PROPERTY_BYTES} bytes)")
        out[key] = value
    return out


def query(labels: Mapping[str, str]) -> str:
    """The ``q`` terms that select files carrying every label."""
    return " and ".join(
        f"appProperties has {{ key={quoted(k)} and value={quoted(v)} }}" for k, v in app_properties(labels).items()
    )
