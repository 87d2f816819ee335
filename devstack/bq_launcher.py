"""Start bqemulator without network: no DuckDB extension downloads.

bqemulator 1.4.0 runs ``INSTALL spatial`` at engine start and dies offline; no flag turns it
off. This launcher replaces that step with a no-op (the price: no GEOGRAPHY) and disables the
best-effort Avro extension, swaps bqemulator's pure-Python FARM_FINGERPRINT for a C one
(``devstack/farm_fingerprint.py``), then hands over to bqemulator's own CLI:

    python -m devstack.bq_launcher start --rest-host 127.0.0.1 --rest-port R ...
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("BQEMU_ENABLE_FORMAT_EXTENSIONS", "false")
    from bqemulator import cli
    from bqemulator.storage.engine import DuckDBEngine

    from devstack import farm_fingerprint

    farm_fingerprint.install()

    def _no_spatial(self: DuckDBEngine) -> None:  # GEOGRAPHY needs the spatial extension
        return None

    DuckDBEngine._load_spatial = _no_spatial  # type: ignore[method-assign]
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="bqemulator")


if __name__ == "__main__":
    main()
