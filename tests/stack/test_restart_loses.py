"""`offsite dev restart` of a component that keeps its state in memory says what was lost: the
stack's bqemulator runs ``--ephemeral`` unless OFFSITE_DEV_BQ_MEMORY_LIMIT is set, so a restart
(after it died, say) brings it back empty and every export then fails with "not found: dataset".
Before, the restart printed only `restarted bqemulator: … ok`."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.launches import Launch
from devstack.push.supervisor import restart_loses, save_launches


def _launches(root: Path, bq_storage: list[str]) -> None:
    def launch(name: str, *argv: str) -> Launch:
        return Launch(name=name, port=1, argv=["python", "-m", name, *argv], health_url="http://x/", env={})

    save_launches(
        root,
        {
            "bqemulator": launch("bqemulator", "start", *bq_storage),
            "gcs": launch("gcs", "-backend", "filesystem"),
            "drive": launch("drive"),
            "bigquery": launch("bigquery"),
            "relay": launch("relay"),
        },
    )


@pytest.mark.parametrize(
    ("storage", "lost"),
    [(["--ephemeral"], "datasets and tables in memory: they are gone"), (["--persistent", "--data-dir", "d"], None)],
    ids=["in-memory", "file-backed"],
)
def test_a_restarted_bqemulator_says_whether_its_tables_are_gone(
    tmp_path: Path, storage: list[str], lost: str | None
) -> None:
    _launches(tmp_path, storage)
    said = restart_loses(tmp_path, "bqemulator")
    if lost is None:
        assert said is None
    else:
        assert said is not None and lost in said and "`offsite dev seed`" in said


def test_only_components_with_state_in_memory_lose_something(tmp_path: Path) -> None:
    _launches(tmp_path, ["--ephemeral"])
    assert restart_loses(tmp_path, "gcs") is None and restart_loses(tmp_path, "relay") is None
    assert "records in memory" in (restart_loses(tmp_path, "drive") or "")
    assert "jobs in memory" in (restart_loses(tmp_path, "bigquery") or "")
