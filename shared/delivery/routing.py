"""Which run a finalized object belongs to, and where that run routes its files.

Both uploaders (and verify) start the same way: is this object an export data file, and
what does its run's ``_run.json`` (the TableExport written before the export began) say
about destinations? One place answers both.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import log
from shared.destinations.base import FolderLayout
from shared.errors import PermanentError, RejectedInput
from shared.events import StorageObject
from shared.gcp import gcs
from shared.layout import RunFolder, is_data_file, parse_object_name, remote_folder
from shared.messages import TableExport

logger = log.get_logger(__name__)


def locate_data_file(obj: StorageObject, export_prefix: str) -> tuple[RunFolder, str] | None:
    """(run folder, file name) for an export data file; None (logged) for anything else."""
    located = parse_object_name(obj.name, export_prefix)
    if located is None or not is_data_file(located[1]):
        logger.info("not an export data file; ignored", bucket=obj.bucket, object=obj.name)
        return None
    return located


def load_run(bucket: str, folder: RunFolder) -> TableExport | None:
    """The run's routing file ``_run.json``; None when absent; RejectedInput when malformed."""
    data = gcs.read_bytes(bucket, folder.run_name)
    if data is None:
        return None
    try:
        return TableExport.from_json(data)
    except RejectedInput as exc:
        raise RejectedInput(f"{gcs.uri(bucket, folder.run_name)}: {exc}") from None


def routing_for(obj: StorageObject, run: RunFolder) -> TableExport | None:
    """The TableExport of the object's run; None (logged) when the folder has no ``_run.json``.

    A ``_run.json`` naming another run id than its folder is a PermanentError: something
    other than offsite wrote it.
    """
    routing = load_run(obj.bucket, run)
    if routing is None:
        logger.warning("no _run.json next to the object; not an offsite export, ignored", run_file=run.run_name)
        return None
    if routing.run_id != run.run_id:
        raise PermanentError(
            f"gs://{obj.bucket}/{run.run_name}: run_id {routing.run_id!r} does not match the folder's {run.run_id!r}"
        )
    return routing


@dataclass(frozen=True)
class RoutedFile:
    """An export data file, its run folder, and where its run sends it."""

    obj: StorageObject
    folder: RunFolder
    filename: str
    routing: TableExport

    def remote_path(self, layout: FolderLayout) -> str:
        """Where the file goes at a destination with this folder layout."""
        run = RunFolder(self.folder.export_prefix, self.routing.source, self.routing.date, self.routing.run_id)
        folder = remote_folder(layout, run, self.routing.file_name).path
        return f"{folder}/{self.filename}" if folder else self.filename


def route(obj: StorageObject, export_prefix: str) -> RoutedFile | None:
    """The routed export data file ``obj``; None (logged) when it is not one."""
    located = locate_data_file(obj, export_prefix)
    if located is None:
        return None
    folder, filename = located
    with log.bind(run_id=folder.run_id, table=folder.source.label):
        routing = routing_for(obj, folder)
    if routing is None:
        return None
    return RoutedFile(obj, folder, filename, routing)
