"""Overlap end to end: the pipeline's wall time against each of its stages measured alone.

The end-to-end scenario (bench/e2e_bench.py) times 10 tables → Box + SFTP → in_sync through the
stack's functions, where delivery starts with the first exported file and overlaps the export.
Here each stage runs alone on the same data and the same stack, one after the other, each in a
child process of its own (as each function is a process of its own in the stack), with as many
requests at once as the stack's push dispatcher hands the function (every table or every file):

- export: ``shared.stages.export.run_export`` (export_table's steps) for every table, into a
  bucket without notifications (so nothing else wakes up);
- box / sftp: every exported data file streamed from GCS (``ObjectReader``, as the delivery
  operation reads) into the destination's run folder by ``Destination.put``, and its SHA-1
  recorded on the object as the delivery operation records it;
- verify: ``shared.verify.engine.compare`` (verify's comparison: listing, then the SHA-1 of each
  file at the destination against the one recorded on its object) of every table at both
  destinations.

Left out of the stages alone: receipts, markers, the manifest copies (a few kB each) and
Pub/Sub; they are in the pipeline's wall time. :class:`Overlap` joins the figures: the target
is a wall time ≤ 1.3 × the slowest stage alone.

Beside the seconds, the whole machine's busy CPU-seconds over the pipeline and over each stage
alone (the stack's processes, ours, and the short-lived ``ssh``/``sshd`` ones): overlapped stages
share the cores, so no pipeline finishes sooner than the CPU its stages need over the cores there
are — the floor :attr:`Overlap.cpu_floor_s` sets beside the slowest stage.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.children import mark_start, python_child, run_child
from bench.common import create_buckets, own_buckets

TARGET_FACTOR = 1.3
EXPORT_BUCKET = "offsite-bench-overlap"  # no notifications: exports here wake no function
STAGES = ("export", "box", "sftp", "verify")
T = TypeVar("T")


@dataclass(frozen=True)
class Overlap:
    """One pipeline wall time and the seconds of each stage alone."""

    wall_s: float
    alone_s: dict[str, float]
    wall_cpu_s: float | None = None  # the machine's busy CPU-seconds over the pipeline
    alone_cpu_s: dict[str, float] = field(default_factory=dict)  # … over each stage alone
    cores: int = os.cpu_count() or 1

    @property
    def slowest(self) -> tuple[str, float]:
        """The stage that takes longest alone: the floor of any overlapped pipeline."""
        if not self.alone_s:
            raise ValueError("no stage was measured alone")
        name = max(self.alone_s, key=lambda n: self.alone_s[n])
        return name, self.alone_s[name]

    @property
    def factor(self) -> float:
        """Wall time over the slowest stage alone (1.0: perfect overlap, nothing else costs)."""
        return self.wall_s / self.slowest[1]

    @property
    def serial_s(self) -> float:
        """The stages one after the other: what no overlap at all would cost."""
        return sum(self.alone_s.values())

    @property
    def hidden(self) -> float | None:
        """Share of the other stages' time hidden behind the slowest one: 1.0 when the wall is
        the slowest stage, 0.0 when it is the stages in a row (can leave 0–1 either way: the
        pipeline also pays messages, and stages compete for the same cores). None with one stage."""
        others = self.serial_s - self.slowest[1]
        if others <= 0:
            return None
        return (self.serial_s - self.wall_s) / others

    @property
    def cpu_floor_s(self) -> float | None:
        """The least wall time the stages' CPU allows on these cores, were the overlap perfect and
        the pipeline cost no CPU of its own: their CPU alone over the cores (None unmeasured)."""
        if not self.alone_cpu_s:
            return None
        return sum(self.alone_cpu_s.values()) / self.cores

    def passed(self, target: float = TARGET_FACTOR) -> bool:
        return self.factor <= target

    def describe_cpu(self) -> str:
        """Where the machine's CPU went: the pipeline's against its stages' alone, and the floor."""
        floor = self.cpu_floor_s
        if floor is None or self.wall_cpu_s is None:
            return ""
        name, slowest = self.slowest
        alone = sum(self.alone_cpu_s.values())
        stages = ", ".join(f"{n} {s:.0f}" for n, s in self.alone_cpu_s.items())
        return (
            f"machine CPU: pipeline {self.wall_cpu_s:.0f} CPU-s ({self.wall_cpu_s / self.wall_s:.1f} of "
            f"{self.cores} cores busy), stages alone {alone:.0f} CPU-s ({stages}), "
            f"{self.wall_cpu_s / alone:.2f}x theirs; their CPU over {self.cores} cores is "
            f"{floor:.1f} s = {floor / slowest:.2f}x {name} alone"
        )

    def describe(self) -> str:
        stages = ", ".join(f"{n} {s:.1f} s" for n, s in self.alone_s.items())
        if self.hidden is None:
            hidden = ""
        elif self.wall_s > self.serial_s:
            hidden = f"; the wall exceeds the stages in a row ({self.serial_s:.1f} s): the pipeline pays more than its stages"
        else:
            hidden = f"; {self.hidden:.0%} of the other stages hidden"
        name, slowest = self.slowest
        return f"wall {self.wall_s:.1f} s = {self.factor:.2f}x {name} alone ({slowest:.1f} s); alone: {stages}{hidden}"


def median_overlap(runs: Sequence[Overlap]) -> Overlap:
    """Median wall time and median of each stage over the runs (stages of the first run)."""
    if not runs:
        raise ValueError("no runs")
    alone = {name: statistics.median(r.alone_s[name] for r in runs) for name in runs[0].alone_s}
    cpu_runs = [r for r in runs if r.wall_cpu_s is not None and r.alone_cpu_s]
    if not cpu_runs:
        return Overlap(statistics.median(r.wall_s for r in runs), alone, cores=runs[0].cores)
    return Overlap(
        statistics.median(r.wall_s for r in runs),
        alone,
        statistics.median(r.wall_cpu_s for r in cpu_runs if r.wall_cpu_s is not None),
        {name: statistics.median(r.alone_cpu_s[name] for r in cpu_runs) for name in cpu_runs[0].alone_cpu_s},
        runs[0].cores,
    )


def _all_at_once(fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
    with ThreadPoolExecutor(max(1, len(items))) as pool:
        return list(pool.map(fn, items))


# ---- children: one stage alone each --------------------------------------------------------------


def _folder(config: Any, project: str, dataset: str, table: str, run_id: str, day: str) -> Any:
    from shared.layout import RunFolder
    from shared.messages import Source

    source = Source(mode="table", project=project, dataset=dataset, table=table)
    return RunFolder(config.export_prefix.strip("/"), source, dt.date.fromisoformat(day), run_id)


def export_alone(project: str, dataset: str, tables: list[str], run_id: str, day: str) -> dict[str, Any]:
    """Child: export_table's steps for every table at once, into ``EXPORT_BUCKET``."""
    from shared import runtime
    from shared.gcp.bigquery import warehouse
    from shared.layout import default_file_name
    from shared.messages import TableExport
    from shared.stages.export import run_export

    config = runtime.config().model_copy(update=own_buckets(EXPORT_BUCKET))
    wh = warehouse()

    def export(table: str) -> int:
        folder = _folder(config, project, dataset, table, run_id, day)
        task = TableExport(
            run_id=run_id,
            date=folder.date,
            source=folder.source,
            format="PARQUET",
            destinations=("box", "sftp:local"),
            prefix=folder.prefix,
            file_name=default_file_name(table, "PARQUET"),
        )
        return len(run_export(task, config, wh, time.monotonic() + 3600).files)

    mark_start()
    files = _all_at_once(export, tables)
    return {"files": sum(files)}


def _manifests(project: str, dataset: str, tables: list[str], run_id: str, day: str) -> list[tuple[Any, Any]]:
    """(RunFolder, Manifest) of every table of the run exported alone."""
    from shared import runtime
    from shared.gcp import gcs
    from shared.manifest import Manifest

    config = runtime.config()
    out = []
    for table in tables:
        folder = _folder(config, project, dataset, table, run_id, day)
        data = gcs.read_bytes(EXPORT_BUCKET, folder.manifest_name)
        if data is None:
            raise RuntimeError(f"gs://{EXPORT_BUCKET}/{folder.manifest_name} is missing: did the export alone run?")
        out.append((folder, Manifest.from_json(data)))
    return out


def deliver_alone(
    destination: str, project: str, dataset: str, tables: list[str], run_id: str, day: str
) -> dict[str, Any]:
    """Child: every data file of the run at once, GCS → ``destination``, by ``Destination.put``;
    each file's SHA-1 then recorded on its object as the delivery operation records it (verify
    reads it there instead of reading the object again)."""
    from shared import runtime
    from shared.delivery.ledger import record_delivery
    from shared.delivery.operation import PREFETCH_BLOCKS
    from shared.destinations import factory
    from shared.gcp import gcs
    from shared.gcp.reader import ObjectReader
    from shared.layout import remote_folder

    config = runtime.config()
    files = [
        (folder, manifest, f)
        for folder, manifest in _manifests(project, dataset, tables, run_id, day)
        for f in manifest.files
    ]

    def put(item: tuple[Any, Any, Any]) -> int:
        folder, manifest, file = item
        info = gcs.stat(EXPORT_BUCKET, file.object, missing_ok=False)
        assert info is not None
        with factory.opened(destination, config) as dest, ObjectReader(info, prefetch=PREFETCH_BLOCKS) as stream:
            path = remote_folder(dest.abilities.layout, folder, manifest.file_name).path
            result = dest.put(f"{path}/{file.name}", stream, file.size)
        record_delivery(info, result.sha1, None)
        return int(result.size)

    mark_start()
    sizes = _all_at_once(put, files)
    return {"files": len(sizes), "bytes": sum(sizes)}


def verify_alone(
    destinations: list[str], project: str, dataset: str, tables: list[str], run_id: str, day: str
) -> dict[str, Any]:
    """Child: verify's comparison of every table at every destination at once."""
    from shared import runtime
    from shared.destinations import factory
    from shared.layout import remote_folder
    from shared.verify.engine import compare
    from shared.verify.runs import RunObjects

    config = runtime.config()
    runs = _manifests(project, dataset, tables, run_id, day)
    mark_start()

    def check(item: tuple[str, Any, Any]) -> str:
        destination, folder, manifest = item
        objects = RunObjects(EXPORT_BUCKET, folder)
        with factory.opened(destination, config) as dest:
            where = remote_folder(dest.abilities.layout, folder, manifest.file_name)
            comparison = compare(
                manifest, dest, where, source_sha1=objects.sha1, download_hashes=config.verify.download_hashes
            )
        if not comparison.in_sync:
            raise RuntimeError(f"{folder.source.label} at {destination} is not in sync: {comparison}")
        return comparison.check

    checks = _all_at_once(check, [(d, folder, m) for d in destinations for folder, m in runs])
    return {"checks": sorted(set(checks))}


# ---- the stages alone, one after the other ------------------------------------------------------


def measure_alone(
    stack: Any, dataset: str, tables: list[str], destinations: list[str], run_id: str
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds and the machine's busy CPU-seconds of each stage alone (``STAGES``), on a run of its
    own (``run_id``), then its objects in ``EXPORT_BUCKET`` deleted (the delivered copies stay
    until the stack is wiped)."""
    from shared.gcp import clients

    env = {**os.environ, **stack.env}
    args = {
        "project": stack.project,
        "dataset": dataset,
        "tables": tables,
        "run_id": run_id,
        "day": dt.date.today().isoformat(),
    }
    storage = clients.storage_client()
    create_buckets(storage, EXPORT_BUCKET)
    children = {
        "export": python_child("bench.overlap:export_alone", **args),
        "box": python_child("bench.overlap:deliver_alone", destination="box", **args),
        "sftp": python_child("bench.overlap:deliver_alone", destination="sftp:local", **args),
        "verify": python_child("bench.overlap:verify_alone", destinations=destinations, **args),
    }
    seconds, cpu = {}, {}
    try:
        for stage in STAGES:
            measured = run_child(children[stage], env=env, interval_s=0.2)
            seconds[stage], cpu[stage] = measured.seconds, measured.machine_cpu_s
    finally:
        for blob in storage.list_blobs(EXPORT_BUCKET, prefix=None):
            if f"/{run_id}/" in blob.name:
                blob.delete()
    return seconds, cpu
