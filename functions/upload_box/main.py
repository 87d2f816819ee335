"""Cloud Function upload_box: GCS object finalized → file in Box, receipt on deliveries."""

import functions_framework
from cloudevents.http import CloudEvent

from shared.ids import Stage
from shared.stages import runner
from shared.stages.deliver import handler_for

deliver = handler_for(Stage.UPLOAD_BOX)


@functions_framework.cloud_event
def upload_box(event: CloudEvent) -> None:
    runner.run(Stage.UPLOAD_BOX, event, deliver)
