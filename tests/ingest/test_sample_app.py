"""The sample SQLite app `offsite dev seed` creates, synced with the local stack's `ingest:` config."""

from __future__ import annotations

from pathlib import Path

from devstack import sample_app
from devstack.state import StackInfo
from shared.config.load import load_config
from shared.ingest.engine import IngestRun, sync


def test_the_sample_app_syncs_with_the_generated_local_config(bare_stack_env: StackInfo, tmp_path: Path) -> None:
    from shared.gcp import clients

    settings = load_config(bare_stack_env.config_path).ingest
    assert settings is not None
    assert settings.sqlite_path == str(Path(bare_stack_env.root) / "app.db")
    db = tmp_path / "app.db"
    counts = sample_app.create(db)
    assert counts == {"users": 40, "chat_history": 400, "user_cohorts": counts["user_cohorts"]}
    assert sample_app.create(db) == counts  # seeding twice adds nothing
    dataset = f"sample_{tmp_path.name[-8:].replace('-', '_')}"
    local = settings.model_copy(update={"sqlite_path": str(db), "dataset": dataset})
    client = clients.bigquery_client()
    try:
        outcomes = {o.table: o for o in sync(IngestRun(local, client, bare_stack_env.project))}
        assert {t: (o.status, o.mode, o.rows_read) for t, o in outcomes.items()} == {
            "chat_history": ("synced", "append", 400),
            "user_cohorts": ("synced", "merge", counts["user_cohorts"]),
            "users": ("synced", "merge", 40),
        }
        rows = {r["id"]: r for r in client.query(f"SELECT * FROM `{bare_stack_env.project}.{dataset}.users`").result()}
        assert rows[7]["name"] == "User 7 (renamed)"
        assert rows[10]["plan"] == "pro"
        assert not any(str(r["api_key"]).startswith("sk-live") for r in rows.values())
    finally:
        client.delete_dataset(f"{bare_stack_env.project}.{dataset}", delete_contents=True, not_found_ok=True)
