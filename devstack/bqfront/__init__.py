"""A local BigQuery front for the devstack: bqemulator behind it, export jobs run by it.

bqemulator runs queries but cannot extract to GCS nor run EXPORT DATA. This front forwards
every BigQuery REST call to bqemulator unchanged, except extract jobs and EXPORT DATA query
jobs, which it runs itself and writes into the GCS emulator the way BigQuery would. Run it
with ``python -m devstack.bqfront``; what it implements and what not: docs/bqfront.md.
"""

from devstack.bqfront.routes import build_app
from devstack.bqfront.server import FrontConfig

__all__ = ["FrontConfig", "build_app"]
