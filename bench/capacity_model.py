"""The capacity model of a nightly disaster-recovery run (docs/capacity.md), as code.

Formulas only: what one run of ``tables`` tables and ``total_bytes`` costs in messages,
invocations, function time, Box API calls, BigQuery extract quota and money, and which limit
binds first. docs/capacity.md explains each formula and cites the limits and prices;
bench/e2e_bench.py compares the message and call counts a real run on the local stack made
with :func:`counts` for that run's shape (the simulation at small scale).

    .venv/bin/python bench/capacity_model.py                      # 10 TB in 5,000 tables
    .venv/bin/python bench/capacity_model.py --tables 500 --total-gb 10
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass, field

GB = 1e9
GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Shape:
    """One run: how many tables, how many bytes, how they are cut, where they go."""

    tables: int = 5_000
    total_bytes: float = 10e12
    file_bytes: float = 1 * GB  # BigQuery writes files of at most 1 GB (docs/capacity.md, L1)
    part_bytes: int = 8 * MIB  # the part size Box hands out (L5); larger files may get larger parts
    destinations: tuple[str, ...] = ("box",)
    runs_per_month: int = 30
    chunked_bytes: float = 20e6  # Box's threshold for upload sessions (L5; box.chunked_threshold_bytes)
    folder_depth: int = 6  # levels of a table's run folder (GCP/bigquery/{dataset}/{table}/{date}/{run})
    shared_folder_levels: int = 3  # of them, the levels every table of the dataset shares (GCP/bigquery/{dataset})
    # requests that may walk the shared levels with a cold folder cache at once (upload_box and
    # verify, every instance's slots: the deployed maxima here; one instance each on the local stack)
    folder_slots: int = field(default_factory=lambda: cold_folder_slots())

    @property
    def files_per_table(self) -> int:
        return max(1, math.ceil(self.total_bytes / self.tables / self.file_bytes))

    @property
    def files(self) -> int:
        return self.tables * self.files_per_table


@dataclass(frozen=True)
class Limits:
    """The limits the run meets (values and sources: docs/capacity.md)."""

    box_calls_per_min: float = 1_000  # L4: API calls per minute per user
    box_uploads_per_min: float = 240  # L4: upload requests per minute per user
    box_instance_mb_s: float = 80.0  # one upload_box instance: 4 parts × ~20 MB/s per stream (WAN profile)
    bq_extract_bytes_per_day: float = 50 * 1024**4  # L2: 50 TiB per project per day (shared pool)
    bq_extract_jobs_per_day: int = 100_000  # L2
    upload_box_instances: int = 10  # shared/topology.py: max_instances
    export_table_slots: int = 160  # shared/topology.py: 10 instances × 16 requests at once
    export_budget_s: float = 60.0  # shared/stages/export.py: the request handler waits on its job at most this
    # A request's hold on its slot while every slot is taken: it starts its job (a table lookup,
    # the insert, one poll) and gives the slot back (shared/in_flight.py). An estimate of three
    # BigQuery API calls; the local stack starts 100 jobs in ~1 s on 160 slots (docs/performance.md).
    export_start_s: float = 2.0
    export_table_instances: int = 10  # shared/topology.py: max_instances
    # One page of an object listing (1,000 objects, GCS's maximum): measured on the local stack
    # (fake-gcs-server on loopback, google-cloud-storage parsing it: 335-376 ms, 2026-12-04); no
    # published figure for GCS itself, so the sweep times below are this machine's order of size.
    gcs_list_page_s: float = 0.35
    # infra/config.tf: the export finalize sweep every 15 min; verify.sweep_schedule's default every 30 min
    sweeps_per_day: int = 24 * 4 + 24 * 2
    verify_timeout_s: float = 540.0  # shared/topology.py: the verify function, which runs its sweep
    # the most each sweep lists before it stops at a run folder's boundary and leaves the rest to
    # the next (shared/verify/sweep.py LISTING_BUDGET_S, shared/stages/export.py SWEEP_LISTING_S)
    verify_sweep_listing_s: float = 180.0
    finalize_sweep_listing_s: float = 240.0


@dataclass(frozen=True)
class Prices:
    """List prices in USD (docs/capacity.md, P1–P4); tiered egress taken at its 10+ TiB rate."""

    vcpu_second: float = 0.000024  # P1 Cloud Run functions (request-based billing, tier 1)
    gib_second: float = 0.0000025  # P1
    per_million_invocations: float = 0.40  # P1
    pubsub_per_tib: float = 40.0  # P2, 1 KB minimum per message
    gcs_gb_month: float = 0.020  # P3 standard, regional
    gcs_class_a_per_1000: float = 0.005  # P3 writes, metadata patches
    egress_per_gib: float = 0.08  # P4 premium tier, internet, 10+ TiB a month (0.12 / 0.11 below)
    staging_days: float = 7.0  # the exports bucket's expiration_days


def counts(shape: Shape) -> dict[str, int]:
    """Messages, invocations and Box calls of one run (docs/capacity.md, "Counts"), per the
    topology of shared/topology.py: three storage-triggered functions see every object of a run
    folder, and each destination receives one manifest copy per table after its data files."""
    tables, files, dests = shape.tables, shape.files, len(shape.destinations)
    objects = files + 3 * tables  # data files + _run.json, _manifest.json, _manifest.delivered.json
    boxed = "box" in shape.destinations
    box_files = files if boxed else 0
    return {
        "export_requests": 1,
        "table_exports": tables,
        "job_completed_events": 2 * tables,  # BigQuery's audit entries: the extract job, the fingerprint job
        "export_table_invocations": 3 * tables,  # the table-exports message and both entries
        "gcs_objects": objects,
        "gcs_events": 3 * objects,  # upload_box, transfer_sftp and verify each get every finalize
        "deliveries": (files + tables) * dests,  # each data file and the manifest copy, per destination
        "verify_results": tables * dests,
        "box_upload_sessions": box_files if shape.file_bytes >= shape.chunked_bytes else 0,
        "box_part_uploads": box_files * parts_per_file(shape),
        "box_api_calls": box_calls(shape) if boxed else 0,
    }


MESSAGE_COUNTS = (
    "export_requests",
    "table_exports",
    "job_completed_events",
    "gcs_events",
    "deliveries",
    "verify_results",
)


def messages(c: dict[str, int]) -> int:
    """Pub/Sub messages of one run (events and results; Box calls and objects are not messages)."""
    return sum(c[name] for name in MESSAGE_COUNTS)


def parts_per_file(shape: Shape) -> int:
    """Upload requests per data file: one below Box's chunked threshold, else one per part."""
    return 1 if shape.file_bytes < shape.chunked_bytes else math.ceil(shape.file_bytes / shape.part_bytes)


FOLDER_WALKERS = ("upload_box", "verify")  # the functions that resolve a run's Box folders


def cold_folder_slots(instances: int | None = None) -> int:
    """Requests of upload_box and verify that can run at once (shared/topology.py), ``instances``
    of each (their max_instances by default): each may meet the shared folder levels uncached."""
    from shared.topology import FUNCTIONS

    return sum(fn.concurrency * (instances or fn.max_instances) for fn in FUNCTIONS if fn.name in FOLDER_WALKERS)


def box_calls(shape: Shape) -> int:
    """Box API calls of one run to one Box destination (docs/capacity.md, "Box API calls").

    Per data file: a preflight and one upload (below 20 MB), or a preflight, a session, its
    parts, the commit and a folder lookup. Per table: its own folder levels created by upload_box
    and looked up by verify (a listing a level), a listing after each data file and on the manifest's
    event (is the run complete at Box?), the manifest copy (preflight, upload) and the other
    trigger's check that finds it unchanged (a preflight, no receipt), and verify's listings: one
    per data-file receipt (the copy is not there yet, so the run is incomplete), two on the
    copy's receipt (names, then the full comparison), one on the manifest's event. Per request
    slot of upload_box and verify, the levels the tables share, created or looked up once with a
    cold cache (requests that start together each walk them before any has cached them).
    """
    f, t = shape.files, shape.tables
    per_file = 2 if shape.file_bytes < shape.chunked_bytes else parts_per_file(shape) + 4
    delivery_listings = f + t
    manifest_copy = 2 * t + t  # preflight + upload, then the other trigger's preflight
    verify_listings = f + 3 * t
    own_levels = shape.folder_depth - shape.shared_folder_levels
    folders = 2 * own_levels * t + shape.shared_folder_levels * shape.folder_slots
    return f * per_file + folders + delivery_listings + manifest_copy + verify_listings


def start_waves(shape: Shape, limits: Limits = Limits()) -> int:
    """How many rounds of export_table's request slots the run's table-exports take. While every
    slot is taken, a request only starts its job and gives its slot back (shared/in_flight.py), so
    a round lasts about ``export_start_s``; only the last round's requests, with slots to spare,
    wait on their jobs (at most the budget)."""
    return math.ceil(shape.tables / limits.export_table_slots)


def export_wait_instance_seconds(shape: Shape, limits: Limits = Limits()) -> float:
    """export_table's instance time spent waiting on jobs: every instance busy for each full round's
    starts, then at most a budget for the last round's waits."""
    full_rounds = start_waves(shape, limits) - 1
    return limits.export_table_instances * (full_rounds * limits.export_start_s + limits.export_budget_s)


def sweep_listing(
    shape: Shape, staging_days: float, limits: Limits = Limits(), recheck_days: int = 7
) -> dict[str, float]:
    """What the scheduled sweeps list (docs/capacity.md, "The sweeps' listings"): both sweeps
    every object the exports bucket still keeps (one run a day, each kept ``expiration_days``),
    and verify's recheck every verify marker the state bucket keeps (``max(expiration_days, 90)``
    days: a result and up to ``recheck_days`` daily recheck markers per run and destination).
    A listing longer than a sweep's listing time is read in parts: ``*_sweeps_per_pass`` sweeps
    cover it once."""
    objects = counts(shape)["gcs_objects"] * staging_days
    pages = math.ceil(objects / 1_000)
    markers = shape.tables * len(shape.destinations) * (1 + recheck_days) * max(staging_days, 90)
    marker_pages = math.ceil(markers / 1_000)
    return {
        "sweep_listed_objects": objects,
        "sweep_list_pages": float(pages),
        "sweep_list_seconds": pages * limits.gcs_list_page_s,
        "verify_sweeps_per_pass": float(math.ceil(pages * limits.gcs_list_page_s / limits.verify_sweep_listing_s)),
        "finalize_sweeps_per_pass": float(math.ceil(pages * limits.gcs_list_page_s / limits.finalize_sweep_listing_s)),
        "sweep_list_pages_per_day": float(pages * limits.sweeps_per_day),
        "recheck_listed_markers": float(markers),
        "recheck_list_seconds": marker_pages * limits.gcs_list_page_s,
    }


def model(shape: Shape, limits: Limits = Limits(), prices: Prices = Prices()) -> dict[str, float | str]:
    """Counts, time and money of one run and a month of runs, and the limit that binds."""
    c = counts(shape)
    gib = shape.total_bytes / GIB
    box_bytes = shape.total_bytes if "box" in shape.destinations else 0.0
    box_calls = c["box_api_calls"]
    waves = start_waves(shape, limits)
    hours = {
        "box API calls per minute (L4)": box_calls / limits.box_calls_per_min / 60,
        "box uploads per minute, if parts count (L4)": c["box_part_uploads"] / limits.box_uploads_per_min / 60,
        "upload_box instances (shared/topology.py)": box_bytes
        / (limits.box_instance_mb_s * 1e6 * limits.upload_box_instances)
        / 3600,
        "BigQuery extract bytes per day (L2)": 24.0 * shape.total_bytes / limits.bq_extract_bytes_per_day,
        "export_table request slots (a job start each while full)": waves * limits.export_start_s / 3600,
    }
    binding = max(hours, key=lambda k: hours[k])
    # upload_box: 1 GiB, 0.583 vCPU per instance (2nd gen default for 1 GiB), billed while busy
    box_instance_s = box_bytes / (limits.box_instance_mb_s * 1e6)
    # fan_out once; export_table's invocations already count the table-exports messages
    light_invocations = c["export_requests"] + c["gcs_events"] + c["deliveries"] + c["export_table_invocations"]
    invocations = light_invocations + c["deliveries"]
    export_wait_s = export_wait_instance_seconds(shape, limits)
    function_s = box_instance_s + export_wait_s + 0.2 * light_invocations  # event handling: ~0.2 s each
    per_run_usd = {
        "functions": function_s * (0.583 * prices.vcpu_second + 1.0 * prices.gib_second)
        + invocations / 1e6 * prices.per_million_invocations,
        "pubsub": messages(c) * 1024 / 1024**4 * prices.pubsub_per_tib,  # 1 KB billed minimum each
        "gcs_staging": shape.total_bytes / GB * prices.gcs_gb_month * prices.staging_days / 30,
        "gcs_operations": c["gcs_objects"] * 3 / 1000 * prices.gcs_class_a_per_1000,
        "egress_to_box": box_bytes / GIB * prices.egress_per_gib,
    }
    sweeps = sweep_listing(shape, prices.staging_days, limits)
    per_run_usd["gcs_sweep_listings"] = sweeps["sweep_list_pages_per_day"] / 1000 * prices.gcs_class_a_per_1000
    month = {f"month_usd_{k}": v * shape.runs_per_month for k, v in per_run_usd.items()}
    return {
        **{k: float(v) for k, v in c.items()},
        "gib": gib,
        "function_seconds": function_s,
        "export_wait_instance_seconds": export_wait_s,
        **sweeps,
        **{f"hours_{k}": v for k, v in hours.items()},
        "binding_limit": binding,
        "wall_hours": hours[binding],
        **month,
        "month_usd_total": sum(month.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=Shape.tables)
    parser.add_argument("--total-gb", type=float, default=Shape.total_bytes / GB)
    parser.add_argument("--file-gb", type=float, default=Shape.file_bytes / GB)
    parser.add_argument("--part-mib", type=int, default=Shape.part_bytes // MIB)
    parser.add_argument("--expiration-days", type=float, default=Prices.staging_days, help="the exports bucket's")
    args = parser.parse_args(argv)
    shape = Shape(args.tables, args.total_gb * GB, args.file_gb * GB, args.part_mib * MIB)
    print("shape:", asdict(shape) | {"files": shape.files})
    for key, value in model(shape, prices=Prices(staging_days=args.expiration_days)).items():
        print(f"{key:55} {value:,.2f}" if isinstance(value, float) else f"{key:55} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
