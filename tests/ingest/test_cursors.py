"""Which rows an incremental run takes: cursors compared as time instants, whatever their text form."""

from __future__ import annotations

from shared.ingest.plan import connect, plan_table
from tests.ingest.conftest import IngestKit


def test_a_default_current_timestamp_row_after_an_iso_t_watermark_syncs(ingest: IngestKit) -> None:
    """INSERT through DEFAULT CURRENT_TIMESTAMP ('YYYY-MM-DD HH:MM:SS'), UPDATE setting ISO 'T…Z':
    both accepted forms; as text ' ' < 'T', so comparing text would lose the later row."""
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (1, 'ada', '2025-01-01 10:00:00')")
        conn.execute("UPDATE users SET name = 'ada2', updated_at = '2025-01-01T10:05:00Z' WHERE id = 1")
    first = ingest.run(tables=["users"])
    assert first["users"].watermark == "2025-01-01T10:05:00Z"
    with ingest.sqlite() as conn:  # an hour later, in the DEFAULT CURRENT_TIMESTAMP form
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (2, 'bob', '2025-01-01 11:00:00')")
    second = ingest.run(tables=["users"])["users"]
    assert [u["name"] for u in ingest.rows("users")] == ["ada2", "bob"]
    assert (second.rows_read, second.watermark) == (2, "2025-01-01 11:00:00")  # the watermark's row re-read


def test_zone_offsets_are_compared_as_instants(ingest: IngestKit) -> None:
    """'11:30:00+02:00' is 09:30Z: before a 10:00 watermark though its text sorts after it;
    '2025-01-01T08:30:00-0300' (no colon) is 11:30Z: after it though its text sorts before."""
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (1, 'ada', '2025-01-01 10:00:00')")
    ingest.run(tables=["users"])
    with ingest.sqlite() as conn:
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (2, 'old', '2025-01-01T11:30:00+02:00')")
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (3, 'new', '2025-01-01T08:30:00-0300')")
    outcome = ingest.run(tables=["users"])["users"]
    assert [u["id"] for u in ingest.rows("users")] == [1, 3]  # 2 is older than the watermark: an incremental skips it
    assert outcome.watermark == "2025-01-01T08:30:00-0300"
    with ingest.sqlite() as conn:  # 4 is 11:00Z, before the watermark (11:30Z); 5 after it
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (4, 'old', '2025-01-01T12:00:00+01:00')")
        conn.execute("INSERT INTO users (id, name, updated_at) VALUES (5, 'new', '2025-01-01 11:45:00')")
    assert ingest.run(tables=["users"])["users"].rows_read == 2  # 3 (the watermark's row) and 5
    assert [u["id"] for u in ingest.rows("users")] == [1, 3, 5]


def test_an_index_on_the_cursor_still_serves_the_incremental_read(ingest: IngestKit) -> None:
    """The comparison is on the instant; the plain index on the column bounds the range read."""
    from shared.ingest.source import bounds, select_sql

    with ingest.sqlite() as conn:
        conn.execute("CREATE INDEX users_updated_at ON users (updated_at)")
    conn = connect(str(ingest.db))
    plan = plan_table(conn, ingest.settings(), "users")
    sql, params = select_sql(plan, bounds(conn, plan, "2025-01-01T10:05:00Z", full=False))
    steps = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "SEARCH users USING INDEX users_updated_at (updated_at>?)" in steps, steps


def test_a_text_cursor_of_times_not_named_like_one_rereads_its_watermark_second(ingest: IngestKit) -> None:
    """cursor: modified (TEXT, so STRING): a row changed in the watermark's own second after the run's
    snapshot must still sync, as with a timestamp-named cursor (>=, not an integer cursor's >)."""
    with ingest.sqlite() as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, modified TEXT NOT NULL)")
        conn.execute("INSERT INTO notes VALUES (1, 'a', '2025-01-01 10:00:00')")
        conn.execute("INSERT INTO notes VALUES (2, 'b', '2025-01-01 09:00:00')")
    settings = ingest.settings(tables={"notes": {"cursor": "modified"}}, include=["notes"])
    ingest.run(settings)
    with ingest.sqlite() as conn:  # committed just after the run's snapshot, in the same second
        conn.execute("UPDATE notes SET body = 'b2', modified = '2025-01-01 10:00:00' WHERE id = 2")
    ingest.run(settings)
    assert [r["body"] for r in ingest.rows("notes")] == ["a", "b2"]


def test_a_text_cursor_that_holds_no_times_keeps_sqlites_order(ingest: IngestKit) -> None:
    """A TEXT cursor of sortable ids (e.g. ULIDs): not times, so compared as text, ties re-read."""
    with ingest.sqlite() as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT, rev TEXT NOT NULL)")
        conn.executemany("INSERT INTO events VALUES (?, ?, ?)", [(1, "a", "01HZA"), (2, "b", "01HZB")])
    settings = ingest.settings(tables={"events": {"cursor": "rev"}}, include=["events"])
    assert ingest.run(settings)["events"].watermark == "01HZB"
    with ingest.sqlite() as conn:
        conn.execute("UPDATE events SET body = 'a2', rev = '01HZC' WHERE id = 1")
    second = ingest.run(settings)["events"]
    assert (second.rows_read, second.watermark) == (2, "01HZC")
    assert [r["body"] for r in ingest.rows("events")] == ["a2", "b"]
