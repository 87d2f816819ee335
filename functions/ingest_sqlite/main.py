"""Cloud Function ingest_sqlite: ingest-requests / snapshot finalize → SQLite snapshot synced into BigQuery."""

import functions_framework
from cloudevents.http import CloudEvent

from shared.ids import Stage
from shared.stages import runner
from shared.stages.ingest import handle


@functions_framework.cloud_event
def ingest_sqlite(event: CloudEvent) -> None:
    runner.run(Stage.INGEST_SQLITE, event, handle)
