"""Rows for an export, read from bqemulator: a table (Storage Read API over gRPC, else REST) or a query.

A table's Storage Read API stream is read in the thread that consumes the rows, one message
(bqemulator sends up to 65,536 rows, ~7 MB for the sample ``orders`` shape) decoded at a time,
over a channel without HTTP/2 BDP probing. google-cloud-bigquery's ``to_arrow_iterable``
decoded in a worker thread through a queue (about three messages alive at once), and BDP
probing grew the receive window so that the messages bqemulator sent ahead of the slower
Parquet writing piled up in the front: on a 2 M-row export that was ~60–120 MB of peak RSS.
The clients are imported with the module (when the front starts), not by the first export.

bqemulator's errors become JobFailures shaped as BigQuery's: a missing table or dataset is
``notFound``, a bad query ``invalidQuery``; anything else (emulator down, a 5xx) is
``backendError``, which offsite treats as transient.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.cloud import bigquery, bigquery_storage_v1
from google.cloud.bigquery_storage_v1 import types
from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport

from devstack.bqfront.errors import JobFailure

MAX_GRPC_MESSAGE = 256 * 1024 * 1024  # wide rows: bqemulator sends up to 65,536 rows per message


@dataclass
class Rows:
    """A schema (list of SchemaField) and Arrow batches in a deterministic order."""

    schema: list[Any]
    batches: Iterator[Any]


@contextmanager
def upstream_errors(location: str) -> Iterator[None]:
    """bqemulator's google.api_core errors → JobFailure with BigQuery's reasons."""
    try:
        yield
    except gexc.NotFound as exc:
        raise JobFailure("notFound", exc.message, location) from None
    except (gexc.BadRequest, gexc.Forbidden) as exc:
        errors = getattr(exc, "errors", None) or [{}]
        reason = errors[0].get("reason") if isinstance(errors[0], dict) else None
        raise JobFailure(reason or "invalidQuery", exc.message, location) from None
    except gexc.GoogleAPICallError as exc:
        raise JobFailure("backendError", f"bqemulator: {exc.message}", location) from None


class Reader:
    """Reads rows from bqemulator through google-cloud-bigquery (and its Storage Read API client)."""

    def __init__(self, client: Any, grpc_endpoint: str | None) -> None:
        self.client = client
        self.grpc_endpoint = grpc_endpoint
        self._read_client: Any | None = None
        self._lock = threading.Lock()  # jobs share a Reader: one channel, made once

    def columns(self, ref: dict[str, Any], default_project: str) -> list[str] | None:
        """The names of the table's top-level columns now; None when it cannot be read (the
        extract itself then reports why)."""
        try:
            return [f.name for f in self._get_table(ref, default_project).schema]
        except JobFailure:
            return None

    def table(self, ref: dict[str, Any], default_project: str, columns: list[str] | None = None) -> Rows:
        """Rows of ``configuration.extract.sourceTable``; JobFailure(notFound) when it does not exist.
        ``columns``: only these (the table's columns when its job started), when all still exist;
        bqemulator keeps no history to give a dropped column back."""
        table = self._get_table(ref, default_project)
        if str(table.table_type or "TABLE") not in ("TABLE",):
            label = f"{table.project}.{table.dataset_id}.{table.table_id}"
            raise JobFailure("invalid", f"{label} is a {table.table_type}; extract jobs read tables only")
        schema = list(table.schema)
        kept = [f for f in schema if f.name in columns] if columns is not None else schema
        if len(kept) == len(columns or kept) and len(kept) < len(schema):
            names = [f.name for f in kept]
            batches = self._batches(table)
            return Rows(kept, (batch.select(names) for batch in batches))
        return Rows(schema, self._batches(table))

    def _get_table(self, ref: dict[str, Any], default_project: str) -> Any:
        project = ref.get("projectId") or default_project
        label = f"{project}.{ref.get('datasetId')}.{ref.get('tableId')}"
        with upstream_errors("sourceTable"):
            try:
                return self.client.get_table(label)
            except gexc.NotFound:
                raise JobFailure(
                    "notFound", f"Not found: Table {project}:{ref.get('datasetId')}.{ref.get('tableId')}"
                ) from None

    def _batches(self, table: Any) -> Iterator[Any]:
        if self.grpc_endpoint:
            return self._guard(lambda: self._read_stream(table))
        return self._guard(self.client.list_rows(table).to_arrow_iterable)

    def query(self, sql: str, query_config: dict[str, Any]) -> Rows:
        """Run ``sql`` on bqemulator with the job's parameters; rows of its result (REST: the
        emulator's anonymous result tables are not readable over the Storage Read API)."""
        keep = ("queryParameters", "parameterMode", "defaultDataset", "useLegacySql")
        config = bigquery.QueryJobConfig.from_api_repr(
            {"query": {k: query_config[k] for k in keep if k in query_config}}
        )
        with upstream_errors("query"):
            result = self.client.query(sql, job_config=config, job_retry=None).result(timeout=600)
        return Rows(list(result.schema), self._guard(result.to_arrow_iterable))

    def _guard(self, make: Any) -> Iterator[Any]:
        with upstream_errors("rows"):
            yield from make()

    def _read_stream(self, table: Any) -> Iterator[Any]:
        """The table's rows over the Storage Read API: one stream (rows in order), requested as
        google-cloud-bigquery does, each message decoded to an Arrow RecordBatch only when the
        consumer asks for the next one."""
        client = self._storage_read_client()
        requested = types.ReadSession(table=table.to_bqstorage(), data_format=types.DataFormat.ARROW)
        requested.read_options.arrow_serialization_options.buffer_compression = (
            types.ArrowSerializationOptions.CompressionCodec.LZ4_FRAME
        )
        session = client.create_read_session(
            parent=f"projects/{self.client.project}", read_session=requested, max_stream_count=1
        )
        for stream in session.streams:  # none for an empty table
            for page in client.read_rows(stream.name).rows().pages:
                yield page.to_arrow()

    def _storage_read_client(self) -> Any:
        with self._lock:
            if self._read_client is None:
                self._read_client = self._new_read_client()
            return self._read_client

    def _new_read_client(self) -> Any:
        options = [
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
            ("grpc.http2.bdp_probe", 0),  # a fixed receive window: bqemulator cannot send far ahead
        ]
        channel = grpc.insecure_channel(self.grpc_endpoint, options=options)
        return bigquery_storage_v1.BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))
