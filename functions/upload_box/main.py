"""Cloud Function upload_box: GCS object finalized → file in Box, receipt on deliveries."""

import functions_framework
from cloudevents.http import CloudEvent

from shared.stages import runner as stage
from shared.stages.upload_box import upload_box as deliver


@functions_framework.cloud_event
def upload_box(event: CloudEvent) -> None:
    stage.run("upload_box", event, deliver)
