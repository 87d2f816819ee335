"""SQLite → BigQuery incremental ingest (issue 15): plan, read, stage, apply, state. See docs/ingest.md."""
