"""The capacity model's simulation on the local stack: counts of real runs against its formulas.

The nightly model (docs/capacity.md) is 10 TB in 5,000 tables; this runs its thousandth, 500
tables × 20 MB (10 GB; one file each, uploaded to Box in parts as a 20 MB file is). In memory
bqemulator grew past 21 GB with it and was killed by the kernel, so the bench stack stores its
tables in a file (bench/run.py ``BQ_MEMORY_LIMIT``). The run goes through every function of
the running stack as the e2e benchmark's run does
(bench/e2e_bench.py: one export request, the stack's own triggers, the bench only watches).
What is compared is not a time but the counts the model predicts for the shape: table-exports
messages, the jobs' completion entries, export_table's trigger messages, objects written,
delivery receipts, verify results — each must equal the model's — and Box API calls, which must
not exceed it (the formula is an upper bound: a warm folder cache skips levels). One run; a
file receipted twice is named (a delivery that ran again, which the model leaves out).
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import MB, Row
from bench.e2e_bench import DESTINATIONS, measure_once, model_check, seeded_and_watched

# (tables, bytes in all): the thousandth of the nightly run
SHAPES_FULL = ((500, 10_000_000_000),)
SHAPES_QUICK = ((20, 20_000_000),)
UPPER_BOUNDS = frozenset({"box_api_calls"})  # counts the model bounds from above; the rest are exact


def dataset_name(tables: int) -> str:
    return f"bench_capacity_{tables}"


STACK_CONFIG = {
    "datasets": [
        {"name": dataset_name(tables), "destinations": DESTINATIONS}
        for tables in sorted({t for t, _ in SHAPES_FULL + SHAPES_QUICK})
    ]
}


def mismatches(checked: dict[str, tuple[int, int]]) -> list[str]:
    """The counts that break the model: an exact count that differs, a bound that is exceeded."""
    return [
        f"{name} {measured} against {modelled}"
        for name, (measured, modelled) in checked.items()
        if (measured > modelled if name in UPPER_BOUNDS else measured != modelled)
    ]


def run(quick: bool, stack: Any = None) -> list[dict[str, Any]]:
    if stack is None:
        raise RuntimeError("the capacity simulation needs the local stack (bench/run.py starts it)")
    return [simulate(stack, tables, total).to_dict() for tables, total in (SHAPES_QUICK if quick else SHAPES_FULL)]


def simulate(stack: Any, tables: int, total: int) -> Row:
    """One run of ``tables`` tables, ``total`` bytes in all, and its counts against the model's."""
    dataset = dataset_name(tables)
    with seeded_and_watched(stack, total, dataset, tables, sample_s=0.25) as (watch, samplers):
        run_id = f"bc-{tables}-{int(time.time())}"
        sample = measure_once(watch, run_id, samplers, 1800 + 2 * total / MB, dataset, tables)
    checked = model_check(sample, tables)
    wrong = mismatches(checked)
    counts = ", ".join(f"{n} {m}/{p}" for n, (m, p) in checked.items())
    twice = sample["receipted_twice"]
    repeats = f"; receipted twice (a delivery run again): {', '.join(twice)}" if twice else ""
    repeats += f"; messages the watch got twice (not counted): {sample['watch_redelivered']}"
    print(f"   {tables} tables: {sample['wall_s']:.0f} s; counts measured/model: {counts}{repeats}", flush=True)
    return Row(
        scenario="capacity-sim",
        case=f"{tables} tables, {sample['bytes'] / 1e9:.3g} GB → Box + SFTP: counts vs the capacity model",
        unit="s",
        offsite=sample["wall_s"],
        higher_is_better=False,
        target="every count = the model's (Box calls ≤ it); all in_sync",
        passed=not wrong,
        peak_rss_mb=max(sample["function_rss_mb"].values(), default=None),
        runs=1,
        notes=f"{sample['files']} files; measured/model: {counts}"
        + (f"; off the model: {'; '.join(wrong)}" if wrong else "")
        + repeats,
        samples={"run": sample, "checked": checked},
    )
