"""Cloud Function verify: receipts, manifest finalize and verify-requests → verify-results."""

import functions_framework
from cloudevents.http import CloudEvent

from shared.ids import Stage
from shared.stages import runner
from shared.stages.verify import verify as run_verify


@functions_framework.cloud_event
def verify(event: CloudEvent) -> None:
    runner.run(Stage.VERIFY, event, run_verify)
