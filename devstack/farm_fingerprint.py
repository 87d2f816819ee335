"""bqemulator's FARM_FINGERPRINT in C: pyfarmhash's FarmHash ``Fingerprint64`` as a signed INT64.

bqemulator 1.4.0 computes ``FARM_FINGERPRINT`` with a pure-Python FarmHash
(``bqemulator.sql.builtin_udfs.bqemu_farm_fingerprint``, ~1.5 ms a call under load) and runs one
query at a time, so the export fingerprint of a 100 MB table took minutes (docs/performance.md).
:func:`install` swaps in pyfarmhash's C implementation before bqemulator registers its UDFs
(``register_builtin_udfs`` looks the function up in its module when the engine starts); the
local stack's launcher (``devstack/bq_launcher.py``) calls it.

Values: identical to bqemulator's for inputs up to 64 UTF-8 bytes. Longer inputs differ, and
pyfarmhash is the correct one: bqemulator's port of farmhashna's long-input path mixes the first
8 bytes into ``x`` twice and adds ``z`` instead of ``w.first`` to ``v.first`` after the loop;
pyfarmhash is Google's farmhash.cc, which BigQuery documents FARM_FINGERPRINT as
(tests/bqfront/test_farm_fingerprint.py checks both against a reference port).
"""

from __future__ import annotations

import farmhash

_SIGN = 1 << 63


def farm_fingerprint(value: str | None) -> int | None:
    """BigQuery's ``FARM_FINGERPRINT(value)``: FarmHash Fingerprint64 of the UTF-8 bytes, signed."""
    if value is None:
        return None
    unsigned = int(farmhash.fingerprint64(value))
    return unsigned - (1 << 64) if unsigned & _SIGN else unsigned


def install() -> None:
    """Make bqemulator's engines register :func:`farm_fingerprint` as ``bqemu_farm_fingerprint``."""
    from bqemulator.sql import builtin_udfs

    builtin_udfs.bqemu_farm_fingerprint = farm_fingerprint
