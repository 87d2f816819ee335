"""Start bqemulator without network: no DuckDB extension downloads.

bqemulator 1.4.0 runs ``INSTALL spatial`` at engine start and dies offline; no flag turns it
off. This launcher replaces that step with a no-op (the price: no GEOGRAPHY) and disables the
best-effort Avro extension, swaps bqemulator's pure-Python FARM_FINGERPRINT for a C one
(``devstack/farm_fingerprint.py``), caps DuckDB's memory when ``OFFSITE_DEV_BQ_MEMORY_LIMIT`` is
set (a file-backed store then keeps tables larger than memory on disk), then hands over to
bqemulator's own CLI:

    python -m devstack.bq_launcher start --rest-host 127.0.0.1 --rest-port R ...
"""

from __future__ import annotations

import os
import sys

ENV_MEMORY_LIMIT = "OFFSITE_DEV_BQ_MEMORY_LIMIT"  # set by devstack.plan, together with --persistent


def patch_engine(memory_limit: str | None) -> None:
    """bqemulator's DuckDB engine without the spatial extension and, given a limit, capped at it."""
    from bqemulator.storage.engine import DuckDBEngine

    def _no_spatial(self: DuckDBEngine) -> None:  # GEOGRAPHY needs the spatial extension
        return None

    DuckDBEngine._load_spatial = _no_spatial  # type: ignore[method-assign]
    if memory_limit:
        pragmas = DuckDBEngine._apply_session_pragmas

        def _with_memory_limit(self: DuckDBEngine) -> None:  # a file-backed store evicts past this
            pragmas(self)
            self.connection.execute("SET memory_limit = ?", [memory_limit])

        DuckDBEngine._apply_session_pragmas = _with_memory_limit  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("BQEMU_ENABLE_FORMAT_EXTENSIONS", "false")
    from bqemulator import cli

    from devstack import farm_fingerprint

    farm_fingerprint.install()
    patch_engine(os.environ.get(ENV_MEMORY_LIMIT))
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="bqemulator")


if __name__ == "__main__":
    main()
