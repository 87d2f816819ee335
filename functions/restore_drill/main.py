"""Cloud Function restore_drill: prove on a schedule that delivered copies restore (docs/operations.md)."""

import functions_framework
from cloudevents.http import CloudEvent

from shared.ids import Stage
from shared.stages import runner
from shared.stages.restore_drill import restore_drill as run_drill


@functions_framework.cloud_event
def restore_drill(event: CloudEvent) -> None:
    """restore-drills → one table restored into the scratch dataset, compared, reported, dropped."""
    runner.run(Stage.RESTORE_DRILL, event, run_drill)
