"""The local warehouse: bqemulator for data, our own writer for the files an extract job would make.

bqemulator runs queries and serves rows, but its extract jobs write to a local directory, not
to GCS (LOCAL-STACK-NOTES.md). So ``export`` here reads the table (Storage Read API over
gRPC when ``OFFSITE_BIGQUERY_GRPC`` is set, else the REST API) or the query result (REST),
writes Parquet/Avro/CSV/NDJSON shards with BigQuery's names (``*`` → 000000000000, …) and
uploads them to the GCS emulator. Everything else (listing, schemas, COUNT(*)) is the same code
as for real BigQuery. The differences are listed in docs/exports.md.

Idempotent: every shard is created with ``if_generation_match=0``. A redelivered export
regenerates the same bytes; a shard that already exists with the same md5 is left alone, one
with different bytes (the source changed between attempts) fails the run rather than mixing
two versions of the data.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from typing import Any

from shared import log
from shared.errors import PermanentError, TransientError
from shared.gcp import gcs
from shared.gcp.bigquery import BigQueryWarehouse, DatedQuery, ExportJob, ExportResult, ExportSource, TableRef
from shared.gcp.bq_jobs import QUERY_TIMEOUT_S, api_retry, mapped_errors
from shared.gcp.file_formats import check_exportable, write_shards
from shared.layout import shard_name

logger = log.get_logger(__name__)

GRPC_ENV = "OFFSITE_BIGQUERY_GRPC"
DEFAULT_SHARD_BYTES = 4 * 1024 * 1024


class LocalWarehouse(BigQueryWarehouse):
    def __init__(
        self,
        client: Any | None = None,
        project: str | None = None,
        *,
        storage_client: Any | None = None,
        grpc_endpoint: str | None = None,
        shard_size_bytes: int | None = None,
    ) -> None:
        super().__init__(client, project)
        self.storage_client = storage_client
        self.grpc_endpoint = grpc_endpoint if grpc_endpoint is not None else os.environ.get(GRPC_ENV) or None
        self.shard_size_bytes = shard_size_bytes or DEFAULT_SHARD_BYTES
        self._read_client: Any | None = None

    def export(self, job: ExportJob) -> ExportResult:
        schema, batches = self._read(job.source)
        check_exportable(job.format, schema, job.source.label)
        row_count = self.count_rows(job.source)
        sha1: dict[str, str] = {}
        rows_written = 0
        for index, (data, rows) in enumerate(
            write_shards(batches, job.format, schema, self.shard_size_bytes, job.job_id)
        ):
            if time.monotonic() > job.deadline:
                raise TransientError(
                    f"local export {job.job_id} ran past its time budget after {index} files; the retry resumes"
                )
            name = job.prefix + shard_name(job.file_pattern, index)
            self._put(job.bucket, name, data)
            sha1[name] = hashlib.sha1(data).hexdigest()
            rows_written += rows
        if rows_written != row_count:
            # Only possible when the table changes during the export; the manifest keeps COUNT(*).
            logger.warning(
                "rows written differ from COUNT(*)", rows_written=rows_written, row_count=row_count, job_id=job.job_id
            )
        logger.info("local export done", job_id=job.job_id, files=len(sha1), rows=rows_written)
        return ExportResult(
            job_id=job.job_id,
            row_count=row_count,
            schema=[f.to_api_repr() for f in schema],
            file_count=len(sha1),
            sha1=sha1,
            location="local",
        )

    # -- reading rows

    def _read(self, source: ExportSource) -> tuple[list[Any], Iterator[Any]]:
        """(schema fields, arrow batches in a deterministic order)."""
        if isinstance(source, TableRef):
            table = self.get_table(source)
            rows = self.client.list_rows(table, retry=api_retry())
            if self.grpc_endpoint:
                return list(table.schema), self._batches(
                    lambda: rows.to_arrow_iterable(bqstorage_client=self._storage_read_client(), max_stream_count=1),
                    source.label,
                )
            return list(table.schema), self._batches(rows.to_arrow_iterable, source.label)
        assert isinstance(source, DatedQuery)
        from google.cloud import bigquery

        sql, params = source.parameterized()
        what = f"running the query of {source.label}"
        with mapped_errors(what):
            result = self.client.query(
                sql, job_config=bigquery.QueryJobConfig(query_parameters=params), retry=api_retry(), job_retry=None
            ).result(retry=api_retry(), timeout=QUERY_TIMEOUT_S)
        # The emulator's anonymous result tables are not readable over the Storage Read API: REST it is.
        return list(result.schema), self._batches(result.to_arrow_iterable, source.label)

    def _batches(self, make: Any, label: str) -> Iterator[Any]:
        with mapped_errors(f"reading rows of {label}"):
            yield from make()

    def _storage_read_client(self) -> Any:
        if self._read_client is None:
            import grpc
            from google.cloud import bigquery_storage_v1
            from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport

            channel = grpc.insecure_channel(
                self.grpc_endpoint, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]
            )
            self._read_client = bigquery_storage_v1.BigQueryReadClient(
                transport=BigQueryReadGrpcTransport(channel=channel)
            )
        return self._read_client

    # -- writing files

    def _put(self, bucket: str, name: str, data: bytes) -> None:
        if gcs.write_if_absent(bucket, name, data, "application/octet-stream", client=self.storage_client):
            return
        existing = gcs.stat(bucket, name, client=self.storage_client)
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        if existing is not None and existing.md5 == md5:
            logger.info("file already written by an earlier attempt", object=name)
            return
        raise PermanentError(
            f"gs://{bucket}/{name} already holds different bytes (md5 {existing.md5 if existing else None}, "
            f"now {md5}): the source changed since this run first wrote it; start a new run (a new run_id)"
        )
