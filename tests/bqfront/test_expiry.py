"""The front keeps BigQuery's table ``expirationTime``, which bqemulator drops: tables.get shows
it, a patch changes or clears it, and an expired table is gone (404), as BigQuery deletes it."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from google.api_core import exceptions
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField as F

from tests.bqfront.conftest import FrontKit


def _table(front: FrontKit, expires: dt.datetime | None) -> str:
    table = bigquery.Table(front.table(f"stage_{uuid.uuid4().hex[:8]}"), schema=[F("v", "INT64")])
    table.expires = expires
    front.bq.create_table(table)
    return str(table.reference).replace(":", ".")


def test_tables_get_shows_the_expiration_and_a_patch_changes_or_clears_it(front: FrontKit) -> None:
    later = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    table_id = _table(front, later)
    table = front.bq.get_table(table_id)
    assert table.expires == later
    table.expires = later + dt.timedelta(hours=1)
    front.bq.update_table(table, ["expires"])
    assert front.bq.get_table(table_id).expires == later + dt.timedelta(hours=1)
    table.expires = None
    front.bq.update_table(table, ["expires"])
    assert front.bq.get_table(table_id).expires is None
    assert front.bq.get_table(_table(front, None)).expires is None  # a table created without one has none


def test_an_expired_table_is_gone(front: FrontKit) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    table_id = _table(front, soon)
    kept = _table(front, soon + dt.timedelta(hours=1))
    time.sleep(max(0.0, (soon - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
    with pytest.raises(exceptions.NotFound, match="Not found: Table"):
        front.bq.get_table(table_id)
    listed = {t.table_id for t in front.bq.list_tables(f"{front.project}.{front.dataset}")}
    assert table_id.rsplit(".", 1)[1] not in listed  # deleted from bqemulator, not only hidden
    assert kept.rsplit(".", 1)[1] in listed and front.bq.get_table(kept).expires is not None
