"""Staged rows through the BigQuery Storage Write API: one pending stream per staging table, committed once.

The row message is built at run time from the plan's staging schema (``descriptor_pb2`` → a
dynamic message class; no ``protoc`` step), one proto2 ``optional`` field per column, typed as
BigQuery's Storage Write API documents (supported-data-types): INT64 ``int64``, FLOAT64
``double``, BOOL ``bool``, STRING/JSON ``string``, BYTES ``bytes``, NUMERIC ``string`` (plain
decimal text), TIMESTAMP ``int64`` (microseconds since the epoch), DATE ``int32`` (days since
the epoch), DATETIME and TIME ``string`` literals. A NULL is an unset field.

:class:`PendingStager` has the shape of :class:`shared.ingest.parquet.ParquetChunks`
(``add`` / ``flush`` / ``close``): ``add`` encodes a batch and sends it as AppendRows requests
of at most :data:`REQUEST_BYTES` of rows (an AppendRows request must stay under 10 MB), each
with its offset, so a request resent after a broken connection is stored once (``ALREADY_EXISTS``
means it already was); ``flush`` finalizes the stream, checks its row count against the rows
sent and commits it with one ``BatchCommitWriteStreams``. Until that commit the staging table
holds nothing: a run that dies before it leaves an empty staging table (deleted in the engine's
``finally``, or expiring) and a pending stream BigQuery discards.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import decimal
from collections.abc import Callable, Iterator
from typing import Any

from shared import log
from shared.errors import PermanentError, TransientError
from shared.gcp.bq_jobs import QUERY_TIMEOUT_S, api_retry, mapped_errors
from shared.ingest.plan import TablePlan
from shared.ingest.source import Batch
from shared.ingest.types import staging_type
from shared.retry import retry_call

logger = log.get_logger(__name__)

# Serialized rows per AppendRows request. BigQuery rejects requests of 10 MB or more; the
# request also carries the stream name, the offset and (first on a connection) the writer
# schema, a few kB even for wide tables: 8 MiB of rows leaves more than 1.5 MB for those.
REQUEST_BYTES = 8 * 1024 * 1024
MAX_REQUEST_BYTES = 10_000_000  # BigQuery's limit for one request, for the single-row check
MESSAGE_NAME = "OffsiteStagedRow"
EPOCH_DAY = dt.date(1970, 1, 1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Unavailable(PermanentError):
    """The endpoint does not serve the Storage Write API (UNIMPLEMENTED, or the API is not enabled)."""


def available() -> bool:
    """Whether the Storage Write client library is installed (``load_path: auto`` falls back when not)."""
    try:
        import google.cloud.bigquery_storage_v1  # noqa: F401
    except ImportError:
        return False
    return True


def client_from_env() -> Any:
    """A BigQueryWriteClient (gRPC). ``OFFSITE_BIGQUERY_STORAGE_ENDPOINT`` (host:port, plaintext, no
    credentials) points it at a local server, as ``OFFSITE_BIGQUERY_ENDPOINT`` does the REST client.
    Here rather than in :mod:`shared.gcp.clients` so only the ingest's code path needs the library."""
    import os

    from google.cloud.bigquery_storage_v1 import BigQueryWriteClient

    endpoint = os.environ.get("OFFSITE_BIGQUERY_STORAGE_ENDPOINT")
    if endpoint:
        import grpc
        from google.cloud.bigquery_storage_v1.services.big_query_write.transports import BigQueryWriteGrpcTransport

        return BigQueryWriteClient(transport=BigQueryWriteGrpcTransport(channel=grpc.insecure_channel(endpoint)))
    return BigQueryWriteClient()


# ---- the row message ---------------------------------------------------------------------------

_PROTO_TYPES = {  # BigQuery type → FieldDescriptorProto.Type name
    "INT64": "TYPE_INT64",
    "FLOAT64": "TYPE_DOUBLE",
    "BOOL": "TYPE_BOOL",
    "STRING": "TYPE_STRING",
    "BYTES": "TYPE_BYTES",
    "NUMERIC": "TYPE_STRING",
    "TIMESTAMP": "TYPE_INT64",
    "DATE": "TYPE_INT32",
    "DATETIME": "TYPE_STRING",
    "TIME": "TYPE_STRING",
}


def row_descriptor(plan: TablePlan) -> Any:
    """The ``DescriptorProto`` of one staged row: a proto2 optional field per column, in plan order."""
    from google.protobuf import descriptor_pb2

    field = descriptor_pb2.FieldDescriptorProto
    message = descriptor_pb2.DescriptorProto(name=MESSAGE_NAME)
    for number, col in enumerate(plan.columns, start=1):
        proto_type = getattr(field, _PROTO_TYPES[staging_type(col.bq_type)])
        message.field.add(name=col.name, number=number, type=proto_type, label=field.LABEL_OPTIONAL)
    return message


def message_class(descriptor: Any) -> Any:
    """A message class for ``descriptor``, in a pool of its own (plans of different runs never collide)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(name="offsite_staged_row.proto", syntax="proto2")
    file.message_type.add().CopyFrom(descriptor)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(MESSAGE_NAME))


def _micros(value: dt.datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _numeric(value: decimal.Decimal) -> str:
    return format(value, "f")


def _datetime(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _time(value: dt.time) -> str:
    return value.strftime("%H:%M:%S.%f")


_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "NUMERIC": _numeric,
    "TIMESTAMP": _micros,
    "DATE": lambda v: (v - EPOCH_DAY).days,
    "DATETIME": _datetime,
    "TIME": _time,
}


def encode(plan: TablePlan, row_class: Any, batch: Batch) -> list[bytes]:
    """The batch's rows as serialized row messages (values as converted by :mod:`shared.ingest.types`)."""
    names = plan.column_names
    encoders = [_ENCODERS.get(staging_type(c.bq_type)) for c in plan.columns]
    columns = [batch.columns[n] for n in names]
    out = []
    for values in zip(*columns, strict=True):
        fields = {
            name: (enc(v) if enc is not None else v)
            for name, enc, v in zip(names, encoders, values, strict=True)
            if v is not None
        }
        out.append(row_class(**fields).SerializeToString())
    return out


def pack(rows: list[bytes], limit: int = REQUEST_BYTES) -> Iterator[list[bytes]]:
    """Consecutive groups of rows whose serialized size stays within ``limit`` (a larger row goes alone)."""
    group: list[bytes] = []
    size = 0
    for row in rows:
        if len(row) >= MAX_REQUEST_BYTES:
            raise PermanentError(
                f"a staged row is {len(row)} bytes; one AppendRows request must stay under {MAX_REQUEST_BYTES}"
                " (use load_path: load_job for this table)"
            )
        if group and size + len(row) > limit:
            yield group
            group, size = [], 0
        group.append(row)
        size += len(row)
    if group:
        yield group


# ---- the stream --------------------------------------------------------------------------------


def _bounded() -> dict[str, Any]:
    """A Storage Write API call's retry and timeout: the client's defaults (retrying UNAVAILABLE
    for 1,200 s, a 1,200 s timeout) outlast the 540 s an invocation has."""
    return {"retry": api_retry(), "timeout": QUERY_TIMEOUT_S}


def _table_path(table_id: str) -> str:
    project, dataset, table = table_id.split(".")
    return f"projects/{project}/datasets/{dataset}/tables/{table}"


class PendingStager:
    """Batches → one PENDING write stream on the staging table; ``flush`` finalizes and commits it."""

    def __init__(
        self,
        plan: TablePlan,
        write_client: Any,
        staging: str,
        create_staging: Callable[[], None],
        *,
        request_bytes: int = REQUEST_BYTES,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self.plan, self.client, self.staging = plan, write_client, staging
        self.create_staging, self.request_bytes, self.before_commit = create_staging, request_bytes, before_commit
        self.descriptor = row_descriptor(plan)
        self.row_class = message_class(self.descriptor)
        self.stream_name: str | None = None
        self.sent = 0  # rows appended (the next offset)
        self.requests = 0
        self._writer: Any = None

    def _open(self) -> None:
        from google.api_core import exceptions as gexc
        from google.cloud.bigquery_storage_v1 import types, writer

        self.create_staging()
        try:
            stream = self._call(
                lambda: self.client.create_write_stream(
                    parent=_table_path(self.staging),
                    write_stream=types.WriteStream(type_=types.WriteStream.Type.PENDING),
                    **_bounded(),
                ),
                "creating a pending write stream",
            )
        except PermanentError as exc:
            # UNIMPLEMENTED: no such service there; PERMISSION_DENIED: also what a project without
            # bigquerystorage.googleapis.com enabled answers (SERVICE_DISABLED)
            if isinstance(exc.__context__, gexc.MethodNotImplemented | gexc.PermissionDenied):
                raise Unavailable(f"the Storage Write API is not available: {exc}") from None
            raise
        self.stream_name = stream.name
        template = types.AppendRowsRequest(write_stream=stream.name)
        proto_data = types.AppendRowsRequest.ProtoData()
        proto_data.writer_schema = types.ProtoSchema(proto_descriptor=self.descriptor)
        template.proto_rows = proto_data
        self._writer = writer.AppendRowsStream(self.client, template)

    def add(self, batch: Batch) -> None:
        if batch.rows == 0:
            return
        if self._writer is None:
            self._open()
        for rows in pack(encode(self.plan, self.row_class, batch), self.request_bytes):
            self._append(rows)

    def _append(self, rows: list[bytes]) -> None:
        from google.api_core import exceptions as gexc
        from google.cloud.bigquery_storage_v1 import types

        request = types.AppendRowsRequest(write_stream=self.stream_name)
        request.offset = self.sent  # the same offset on a resend: stored once
        proto_data = types.AppendRowsRequest.ProtoData()
        proto_data.rows = types.ProtoRows(serialized_rows=rows)
        request.proto_rows = proto_data

        def once() -> None:
            try:
                self._writer.send(request).result(timeout=QUERY_TIMEOUT_S)
            except gexc.AlreadyExists:  # an earlier attempt of this request was stored
                logger.info("append already stored", offset=self.sent)
            except concurrent.futures.TimeoutError:  # resent at the same offset: stored once
                raise TransientError(
                    f"no answer to the append at offset {self.sent} in {QUERY_TIMEOUT_S:.0f}s"
                ) from None

        retry_call(lambda: self._call(once, f"appending rows at offset {self.sent}"), "appending rows", attempts=4)
        self.sent += len(rows)
        self.requests += 1

    def flush(self) -> None:
        """Finalize the stream, check its row count, commit it once (the rows appear in staging only now)."""
        if self._writer is None:
            return
        from google.cloud.bigquery_storage_v1 import types

        self._close_writer()
        name = self.stream_name
        final = self._call(
            lambda: self.client.finalize_write_stream(name=name, **_bounded()), "finalizing the write stream"
        )
        if int(final.row_count) != self.sent:
            raise TransientError(
                f"staging {self.staging}: the write stream holds {final.row_count} rows, {self.sent} were sent;"
                " nothing committed"
            )
        if self.before_commit is not None:
            self.before_commit()
        request = types.BatchCommitWriteStreamsRequest(parent=_table_path(self.staging), write_streams=[name])
        result = self._call(
            lambda: self.client.batch_commit_write_streams(request, **_bounded()), "committing the write stream"
        )
        if result.stream_errors:
            errors = "; ".join(f"{e.code.name}: {e.error_message}" for e in result.stream_errors)
            raise PermanentError(f"staging {self.staging}: the write stream was not committed: {errors}")
        logger.info("staged through the Storage Write API", rows=self.sent, requests=self.requests)

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and writer.is_active:
            writer.close()

    def close(self) -> None:
        """Release the connection; an uncommitted stream is left to BigQuery, which discards it."""
        from google.cloud.bigquery_storage_v1 import exceptions as bqexc

        try:
            self._close_writer()
        except bqexc.StreamClosedError:
            pass

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        """``fn()`` with the Storage Write API's errors as TransientError / PermanentError."""
        from google.api_core import exceptions as gexc
        from google.cloud.bigquery_storage_v1 import exceptions as bqexc

        what = f"{what} for {self.staging}"
        try:
            with mapped_errors(what):
                return fn()
        except (bqexc.StreamClosedError, gexc.Unknown, gexc.Aborted, gexc.Cancelled) as exc:
            raise TransientError(f"{what}: {exc.__class__.__name__}: {exc}") from exc
        except gexc.GoogleAPICallError as exc:  # OUT_OF_RANGE, FAILED_PRECONDITION, ...: not retried
            raise PermanentError(f"{what}: {exc.__class__.__name__}: {exc.message}") from None
