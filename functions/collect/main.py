"""Cloud Functions collect_list and collect_copy (one source, two deployed functions)."""

import functions_framework
from cloudevents.http import CloudEvent

from shared.ids import Stage
from shared.stages import runner
from shared.stages.collect import collect_copy as run_copy
from shared.stages.collect import collect_list as run_list


@functions_framework.cloud_event
def collect_list(event: CloudEvent) -> None:
    """collect-requests → one collect-files message per new, stable file of the partner directory."""
    runner.run(Stage.COLLECT_LIST, event, run_list)


@functions_framework.cloud_event
def collect_copy(event: CloudEvent) -> None:
    """collect-files → a verified copy at every destination, then keep / move / delete the source."""
    runner.run(Stage.COLLECT_COPY, event, run_copy)
