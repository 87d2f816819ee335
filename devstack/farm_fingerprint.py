"""bqemulator's FARM_FINGERPRINT in C: pyfarmhash's FarmHash ``Fingerprint64`` as a signed INT64.

bqemulator 1.4.0 computes ``FARM_FINGERPRINT`` with a pure-Python FarmHash
(``bqemulator.sql.builtin_udfs.bqemu_farm_fingerprint``, ~1.5 ms a call under load) and runs one
query at a time, so the export fingerprint of a 100 MB table took minutes (docs/performance.md).
:func:`install` replaces bqemulator's UDF, once its own ones are registered, with pyfarmhash's C
implementation as a vectorized (Arrow) UDF: DuckDB then calls Python once per vector of up to
2,048 values instead of once per value, which halved the UDF's cost again. The engine imports
``register_builtin_udfs`` from its module when it starts, so the launcher
(``devstack/bq_launcher.py``) installs before that.

Values: identical to bqemulator's for inputs up to 64 UTF-8 bytes. Longer inputs differ, and
pyfarmhash is the correct one: bqemulator's port of farmhashna's long-input path mixes the first
8 bytes into ``x`` twice and adds ``z`` instead of ``w.first`` to ``v.first`` after the loop;
pyfarmhash is Google's farmhash.cc, which BigQuery documents FARM_FINGERPRINT as
(tests/bqfront/test_farm_fingerprint.py checks both against a reference port).
"""

from __future__ import annotations

from typing import Any

import farmhash
import pyarrow as pa
import pyarrow.compute as pc

_SIGN = 1 << 63
UDF_NAME = "bqemu_farm_fingerprint"


def farm_fingerprint(value: str | None) -> int | None:
    """BigQuery's ``FARM_FINGERPRINT(value)``: FarmHash Fingerprint64 of the UTF-8 bytes, signed."""
    if value is None:
        return None
    unsigned = int(farmhash.fingerprint64(value))
    return unsigned - (1 << 64) if unsigned & _SIGN else unsigned


def farm_fingerprints(values: pa.Array) -> pa.Array:
    """:func:`farm_fingerprint` of a vector (an Arrow UDF): the unsigned fingerprints reinterpreted
    as INT64, NULL where the input is NULL."""
    fingerprint = farmhash.fingerprint64
    unsigned = pa.array([0 if v is None else fingerprint(v) for v in values.to_pylist()], type=pa.uint64())
    signed = unsigned.view(pa.int64())
    return pc.if_else(values.is_null(), pa.scalar(None, pa.int64()), signed) if values.null_count else signed


def install() -> None:
    """Make bqemulator's engines register :func:`farm_fingerprints` as ``bqemu_farm_fingerprint``."""
    from bqemulator.sql import builtin_udfs

    register = builtin_udfs.register_builtin_udfs

    def register_vectorized(connection: Any) -> None:
        register(connection)
        connection.remove_function(UDF_NAME)
        connection.create_function(
            UDF_NAME, farm_fingerprints, ["VARCHAR"], "BIGINT", type="arrow", null_handling="special"
        )

    builtin_udfs.register_builtin_udfs = register_vectorized
