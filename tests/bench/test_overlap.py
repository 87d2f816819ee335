"""bench/overlap.py's arithmetic (wall time against the stages alone) and box_small_bench's file set."""

from __future__ import annotations

import pytest

from bench.box_small_bench import MAX_BYTES, MIN_BYTES, TABLES, file_data, file_paths, file_sizes
from bench.overlap import Overlap, median_overlap


def test_factor_is_wall_over_the_slowest_stage_alone() -> None:
    overlap = Overlap(26.0, {"export": 20.0, "box": 12.0, "sftp": 8.0, "verify": 2.0})
    assert overlap.slowest == ("export", 20.0)
    assert overlap.factor == pytest.approx(1.3)
    assert overlap.passed()
    assert not overlap.passed(1.2)


def test_perfect_overlap_hides_every_other_stage() -> None:
    overlap = Overlap(20.0, {"export": 20.0, "box": 12.0, "sftp": 8.0, "verify": 2.0})
    assert overlap.serial_s == 42.0
    assert overlap.hidden == pytest.approx(1.0)
    assert overlap.factor == pytest.approx(1.0)


def test_stages_in_a_row_hide_nothing() -> None:
    overlap = Overlap(42.0, {"export": 20.0, "box": 12.0, "sftp": 8.0, "verify": 2.0})
    assert overlap.hidden == pytest.approx(0.0)
    assert overlap.factor == pytest.approx(2.1)
    assert not overlap.passed()


def test_a_wall_beyond_the_stages_in_a_row_says_so() -> None:
    overlap = Overlap(50.0, {"export": 20.0, "box": 12.0})
    assert overlap.hidden is not None and overlap.hidden < 0
    assert "exceeds the stages in a row (32.0 s)" in overlap.describe()
    assert "hidden" not in overlap.describe()


def test_slowest_stage_may_be_a_delivery() -> None:
    overlap = Overlap(15.0, {"export": 5.0, "box": 14.0, "sftp": 3.0})
    assert overlap.slowest == ("box", 14.0)
    assert "1.07x box alone" in overlap.describe()


def test_hidden_needs_more_than_one_stage() -> None:
    assert Overlap(3.0, {"export": 2.0}).hidden is None
    with pytest.raises(ValueError, match="no stage"):
        _ = Overlap(3.0, {}).slowest


def test_median_of_runs_takes_each_figure_apart() -> None:
    runs = [
        Overlap(10.0, {"export": 8.0, "box": 1.0}),
        Overlap(30.0, {"export": 2.0, "box": 9.0}),
        Overlap(20.0, {"export": 5.0, "box": 4.0}),
    ]
    combined = median_overlap(runs)
    assert combined.wall_s == 20.0
    assert combined.alone_s == {"export": 5.0, "box": 4.0}
    with pytest.raises(ValueError, match="no runs"):
        median_overlap([])


def test_cpu_floor_is_the_stages_cpu_over_the_cores() -> None:
    alone_cpu = {"export": 40.0, "box": 8.0, "sftp": 8.0, "verify": 4.0}
    overlap = Overlap(50.0, {"export": 25.0, "box": 5.0, "sftp": 5.0, "verify": 4.0}, 90.0, alone_cpu, cores=2)
    assert overlap.cpu_floor_s == pytest.approx(30.0)
    said = overlap.describe_cpu()
    assert "pipeline 90 CPU-s (1.8 of 2 cores busy)" in said
    assert "stages alone 60 CPU-s (export 40, box 8, sftp 8, verify 4), 1.50x theirs" in said
    assert "30.0 s = 1.20x export alone" in said
    assert Overlap(50.0, {"export": 25.0}, 90.0, alone_cpu, cores=4).cpu_floor_s == pytest.approx(15.0)


def test_cpu_is_left_out_where_it_was_not_measured() -> None:
    overlap = Overlap(50.0, {"export": 25.0, "box": 5.0})
    assert overlap.cpu_floor_s is None
    assert overlap.describe_cpu() == ""
    assert median_overlap([overlap, overlap]).cpu_floor_s is None


def test_median_of_runs_takes_the_cpu_apart_too() -> None:
    runs = [
        Overlap(10.0, {"export": 8.0}, 30.0, {"export": 9.0, "box": 1.0}, cores=2),
        Overlap(30.0, {"export": 2.0}, 10.0, {"export": 3.0, "box": 5.0}, cores=2),
        Overlap(20.0, {"export": 5.0}, 20.0, {"export": 6.0, "box": 2.0}, cores=2),
    ]
    combined = median_overlap(runs)
    assert (combined.wall_cpu_s, combined.alone_cpu_s, combined.cores) == (20.0, {"export": 6.0, "box": 2.0}, 2)


def test_small_files_are_within_bounds_varied_and_repeatable() -> None:
    sizes = file_sizes(1_000)
    assert sizes == file_sizes(1_000)
    assert all(MIN_BYTES <= s <= MAX_BYTES for s in sizes)
    assert sum(s < 10_000 for s in sizes) > 200  # log-uniform: a third below 10 kB
    assert sum(s > 100_000 for s in sizes) > 200  # and a third above 100 kB


def test_small_files_spread_over_run_folders_with_unique_bytes() -> None:
    paths = file_paths("top", 30)
    assert len(set(paths)) == 30
    assert len({p.rpartition("/")[0] for p in paths}) == TABLES
    block = bytes(range(256)) * 4
    assert file_data(1, 100, block) != file_data(2, 100, block)
    assert len(file_data(3, 100, block)) == 100


def test_overlap_row_is_the_median_run_against_its_slowest_stage() -> None:
    from bench.e2e_bench import overlap_row

    samples = [
        {"wall_s": 12.0, "alone_s": {"export": 10.0, "box": 4.0, "sftp": 3.0, "verify": 1.0}},
        {"wall_s": 20.0, "alone_s": {"export": 12.0, "box": 5.0, "sftp": 2.0, "verify": 1.0}},
        {"wall_s": 14.0, "alone_s": {"export": 11.0, "box": 9.0, "sftp": 4.0, "verify": 2.0}},
    ]
    row = overlap_row(samples)
    assert (row.offsite, row.peer, row.peer_name) == (14.0, 11.0, "export alone")
    assert row.ratio == pytest.approx(11.0 / 14.0)  # lower is better: the slowest stage over the wall
    assert row.passed  # 14 <= 1.3 × 11
    assert row.samples["alone_s"] == {"export": 11.0, "box": 5.0, "sftp": 3.0, "verify": 1.0}
    assert "machine CPU" not in row.notes  # these samples carry no CPU figures
    samples[2]["wall_s"] = 30.0
    assert not overlap_row(samples).passed  # median wall 20 > 1.3 × 11
    for sample, cpu in zip(samples, (40.0, 60.0, 50.0), strict=True):
        sample["cpu_s"], sample["alone_cpu_s"] = cpu, {"export": cpu / 2, "box": 4.0, "sftp": 4.0, "verify": 2.0}
    row = overlap_row(samples)
    assert row.samples["cpu_s"] == 50.0 and row.samples["alone_cpu_s"]["export"] == 25.0
    assert "machine CPU: pipeline 50 CPU-s" in row.notes


def test_restore_row_refuses_a_peer_that_read_other_bytes() -> None:
    from bench.restore_bench import summarize

    ours = {"bytes": 10_000_000, "stage_s": 0.5, "load_s": 3.0, "files": 1, "rows": 5, "rss_mb": 20.0}
    row = summarize([ours], [{"bytes": 10_000_000, "seconds": 2.0, "rss_mb": 4.0}])
    assert (row.offsite, row.peer) == (20.0, 5.0)
    assert row.passed
    assert not summarize([{**ours, "rss_mb": 200.0}], [{"bytes": 10_000_000, "seconds": 2.0, "rss_mb": 4.0}]).passed
    with pytest.raises(RuntimeError, match="the SDK read 9"):
        summarize([ours], [{"bytes": 9, "seconds": 2.0, "rss_mb": 4.0}])


def test_stack_processes_are_listed_by_cpu_idle_ones_left_out() -> None:
    from bench.e2e_bench import by_component

    assert by_component({"pubsub": 4.0, "bigquery": 27.5, "oidc": 0.0, "gcs": 10.25}) == (
        "bigquery 27.5, gcs 10.2, pubsub 4.0"
    )
    assert by_component({"oidc": 0.01}) == "none measured"
