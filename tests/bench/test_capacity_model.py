"""The capacity model's counts (bench/capacity_model.py, docs/capacity.md) for shapes whose
calls can be counted by hand from what the pipeline does."""

from __future__ import annotations

import pytest

from bench.capacity_model import MIB, Limits, Shape, counts, model, start_waves


@pytest.mark.parametrize("files", [1, 2, 3])
def test_one_table_of_small_files_to_box_and_sftp(files: int) -> None:
    shape = Shape(
        tables=1, total_bytes=files * 5_000, file_bytes=5_000, destinations=("box", "sftp:local"), folder_slots=2
    )
    c = counts(shape)
    assert c["gcs_objects"] == files + 3  # + _run.json, _manifest.json, _manifest.delivered.json
    assert c["gcs_events"] == 3 * (files + 3)
    assert c["deliveries"] == (files + 1) * 2  # each data file and one manifest copy per destination
    assert c["verify_results"] == 2
    assert (c["box_upload_sessions"], c["box_part_uploads"]) == (0, files)
    # upload_box, counted on the local Box API server (6 folders created, a listing after each
    # file and on the manifest's event, a preflight per put plus the repeat trigger's, one upload
    # per file and the copy), then verify: the 6 folders looked up (a listing each), a listing per
    # data-file receipt, two on the copy's, one on the manifest's event
    upload_box = 6 + (files + 1) + (files + 2) + (files + 1)
    verify = 6 + files + 2 + 1
    assert c["box_api_calls"] == upload_box + verify


def test_chunked_files_count_session_parts_commit_and_lookups() -> None:
    shape = Shape(tables=2, total_bytes=4 * 64 * MIB, file_bytes=64 * MIB, part_bytes=8 * MIB, folder_slots=2)
    c = counts(shape)
    assert shape.files == 4 and c["box_upload_sessions"] == 4 and c["box_part_uploads"] == 4 * 8
    # the table's own 3 folder levels created and looked up, delivery listings, copy, verify listings
    per_table = 2 * 3 + (2 + 1) + 3 + (2 + 3)
    shared = 3 * 2  # GCP/bigquery/{dataset}: by the one upload_box request, then the one verify
    assert c["box_api_calls"] == 4 * (8 + 4) + 2 * per_table + shared
    assert c["deliveries"] == 4 + 2


def test_without_box_there_are_no_box_calls() -> None:
    c = counts(Shape(tables=3, total_bytes=3e6, file_bytes=1e6, destinations=("sftp:partner",)))
    assert (c["box_api_calls"], c["box_upload_sessions"], c["box_part_uploads"]) == (0, 0, 0)
    assert c["deliveries"] == 3 + 3


def test_export_table_runs_for_the_request_and_for_both_jobs_completion_entries() -> None:
    c = counts(Shape(tables=7, total_bytes=7e6, file_bytes=1e6))
    assert c["table_exports"] == 7
    assert c["job_completed_events"] == 2 * 7  # the extract job's entry and the fingerprint job's
    assert c["export_table_invocations"] == 3 * 7


def test_the_e2e_runs_shape_has_the_files_it_measured() -> None:
    """model_check builds the shape from the measured bytes and files: 20 files of a 10-table run
    are 2 a table, also when the bytes do not divide evenly (rounded down, the model made it 3)."""
    from bench.e2e_bench import model_check

    sample = {"files": 20, "bytes": 1_006_999_999, "counts": {"gcs_objects": 50, "deliveries": 60}}
    assert model_check(sample) == {"gcs_objects": (50, 50), "deliveries": (60, 60)}


def test_pubsub_carries_events_and_results_not_box_calls() -> None:
    from bench.capacity_model import messages

    t, f, d = 4, 8, 2
    c = counts(Shape(tables=t, total_bytes=f * 1e6, file_bytes=1e6, destinations=("box", "sftp:partner")))
    request, exports, jobs, storage = 1, t, 2 * t, 3 * (f + 3 * t)
    assert messages(c) == request + exports + jobs + storage + (f + t) * d + t * d


def test_limits_are_the_deployed_ones() -> None:
    from shared.stages.export import DEFAULT_BUDGET_S
    from shared.topology import FUNCTIONS

    specs = {f.name: f for f in FUNCTIONS}
    limits = Limits()
    assert limits.export_table_slots == specs["export_table"].max_concurrent_requests
    assert limits.export_table_instances == specs["export_table"].max_instances
    assert limits.export_budget_s == DEFAULT_BUDGET_S
    assert limits.upload_box_instances == specs["upload_box"].max_instances
    assert limits.verify_timeout_s == specs["verify"].timeout_s


def test_export_table_slots_start_jobs_in_rounds_and_only_the_last_round_waits() -> None:
    limits = Limits(export_table_slots=160, export_budget_s=60.0, export_table_instances=10, export_start_s=2.0)
    assert [start_waves(Shape(tables=t), limits) for t in (1, 160, 161, 500, 5_000)] == [1, 1, 2, 4, 32]
    nightly = model(Shape(), limits)
    assert nightly["export_wait_instance_seconds"] == 10 * (31 * 2.0 + 60)
    assert nightly["hours_export_table request slots (a job start each while full)"] == pytest.approx(32 * 2.0 / 3600)
    one_round = model(Shape(tables=160), limits)
    assert one_round["export_wait_instance_seconds"] == 10 * 60  # slots to spare: each waits up to a budget
    without_wait = model(Shape(), Limits(export_budget_s=0.0, export_start_s=0.0))
    assert nightly["function_seconds"] - without_wait["function_seconds"] == pytest.approx(1_220)


def test_the_simulation_holds_exact_counts_to_the_model_and_box_calls_to_its_bound() -> None:
    from bench.capacity_sim import mismatches

    checked = {"deliveries": (2000, 2000), "gcs_objects": (2000, 2000), "box_api_calls": (9000, 9500)}
    assert mismatches(checked) == []
    assert mismatches({**checked, "deliveries": (1999, 2000)}) == ["deliveries 1999 against 2000"]
    assert mismatches({**checked, "box_api_calls": (9501, 9500)}) == ["box_api_calls 9501 against 9500"]


def test_a_500_table_run_is_modelled_with_its_own_table_count() -> None:
    """500 tables × 20 MB, one file each: 2,000 objects and 2,000 receipts for two destinations."""
    from bench.e2e_bench import model_check, table_names

    sample = {"files": 500, "bytes": 500 * 20_000_000, "counts": {"gcs_objects": 2000, "deliveries": 2000}}
    assert model_check(sample, tables=500) == {"gcs_objects": (2000, 2000), "deliveries": (2000, 2000)}
    names = table_names(500)
    assert names[0] == "t000" and names[-1] == "t499" and len(set(names)) == 500
    assert table_names(10) == [f"t{i:02d}" for i in range(10)]  # the e2e run's names, unchanged


def test_box_calls_count_the_shared_folder_levels_once_per_cold_request_slot() -> None:
    """20 tables × 1 MB to Box: 2 calls a file, 13 a table, 2 listings a file, and the 3 shared
    levels (GCP/bigquery/{dataset}) walked by each of the 24 slots of one upload_box (8) and one
    verify (16) — a run of this shape on the local stack made 341 and 353 calls, over 340."""
    from bench.capacity_model import box_calls, cold_folder_slots
    from shared.topology import FUNCTIONS

    slots = {fn.name: fn.concurrency for fn in FUNCTIONS if fn.name in ("upload_box", "verify")}
    assert cold_folder_slots(instances=1) == sum(slots.values()) == 24
    assert cold_folder_slots() == sum(10 * n for n in slots.values())  # both deploy at most 10 instances
    shape = Shape(tables=20, total_bytes=20e6, file_bytes=1e6, destinations=("box", "sftp"), folder_slots=24)
    assert box_calls(shape) == 20 * 2 + 20 * 13 + 20 * 2 + 3 * 24 == 412


def test_each_sweep_lists_every_object_the_bucket_keeps_a_page_per_thousand() -> None:
    """Both scheduled sweeps list the whole export prefix: one run's objects (data files and the
    three control files a table) times the days the lifecycle rule keeps them."""
    from bench.capacity_model import Prices, sweep_listing

    shape = Shape(tables=100, total_bytes=300e9, file_bytes=1e9)  # 3 files a table: 6 objects
    listing = sweep_listing(shape, staging_days=30)
    assert listing["sweep_listed_objects"] == 600 * 30
    assert listing["sweep_list_pages"] == 18
    assert listing["sweep_list_pages_per_day"] == 18 * (96 + 48)  # every 15 and every 30 min
    assert listing["sweep_list_seconds"] == pytest.approx(18 * Limits().gcs_list_page_s)
    # the state bucket keeps markers 90 days: a result and 7 daily rechecks per run and destination
    assert listing["recheck_listed_markers"] == 100 * 1 * (1 + 7) * 90
    assert listing["verify_sweeps_per_pass"] == listing["finalize_sweeps_per_pass"] == 1  # one sweep lists it all
    full = model(Shape(), prices=Prices(staging_days=30))
    assert full["sweep_listed_objects"] == 25_000 * 30
    # 750 pages, ~263 s: more than one verify sweep lists (180 s), so two sweeps cover it
    assert full["sweep_list_seconds"] == pytest.approx(750 * 0.35)
    assert (full["verify_sweeps_per_pass"], full["finalize_sweeps_per_pass"]) == (2, 2)
    # 5,000 tables kept 90 days: past one verify invocation's 540 s, still listed, in 5 sweeps (2.5 hours)
    long = sweep_listing(Shape(), staging_days=90)
    assert long["sweep_list_seconds"] > Limits().verify_timeout_s and long["verify_sweeps_per_pass"] == 5
