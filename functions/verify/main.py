"""Cloud Function verify: receipts, manifest finalize and verify-requests → verify-results."""

import functions_framework
from cloudevents.http import CloudEvent

from shared.stages import runner as stage
from shared.stages.verify import verify as run_verify


@functions_framework.cloud_event
def verify(event: CloudEvent) -> None:
    stage.run("verify", event, run_verify)
