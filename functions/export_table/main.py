"""Cloud Functions fan_out and export_table (one source, two deployed functions)."""

import functions_framework
from cloudevents.http import CloudEvent

from shared.ids import Stage
from shared.stages import runner
from shared.stages.export import ROUTES
from shared.stages.fan_out import fan_out as run_fan_out


@functions_framework.cloud_event
def fan_out(event: CloudEvent) -> None:
    """export-requests → one table-exports message per table."""
    runner.run(Stage.FAN_OUT, event, run_fan_out)


@functions_framework.cloud_event
def export_table(event: CloudEvent) -> None:
    """table-exports → export job started; its completion event (BigQuery audit log) or the
    export sweep → _manifest.json under gs://BUCKET/exports/…"""
    runner.run(Stage.EXPORT_TABLE, event, runner.dispatch(ROUTES))
