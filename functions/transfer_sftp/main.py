"""Cloud Function transfer_sftp: GCS object finalized → file on each routed SFTP partner."""

import functions_framework
from cloudevents.http import CloudEvent

from shared.ids import Stage
from shared.stages import runner
from shared.stages.deliver import handler_for

deliver = handler_for(Stage.TRANSFER_SFTP)


@functions_framework.cloud_event
def transfer_sftp(event: CloudEvent) -> None:
    runner.run(Stage.TRANSFER_SFTP, event, deliver)
