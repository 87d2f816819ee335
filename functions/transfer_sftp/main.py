"""Cloud Function transfer_sftp: GCS object finalized → file on each routed SFTP partner."""

import functions_framework
from cloudevents.http import CloudEvent

from shared.stages import runner as stage
from shared.stages.transfer_sftp import transfer_sftp as deliver


@functions_framework.cloud_event
def transfer_sftp(event: CloudEvent) -> None:
    stage.run("transfer_sftp", event, deliver)
