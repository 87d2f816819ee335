"""The BigQuery front through google-cloud-bigquery's own client: extract and EXPORT DATA jobs in
every format and compression, failures as BigQuery reports them, re-attach by job id, shard
names, and files read back by independent readers giving exactly the source rows."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from tests.bqfront import readers
from tests.bqfront.conftest import NESTED, SCALARS, SMALL_SHARD_BYTES, FrontKit, SecondFront

EXT = {"CSV": "csv", "NEWLINE_DELIMITED_JSON": "json", "AVRO": "avro", "PARQUET": "parquet"}
CASES = [
    ("CSV", "NONE"),
    ("CSV", "GZIP"),
    ("NEWLINE_DELIMITED_JSON", "NONE"),
    ("NEWLINE_DELIMITED_JSON", "GZIP"),
    ("AVRO", "NONE"),
    ("AVRO", "DEFLATE"),
    ("AVRO", "SNAPPY"),
    ("PARQUET", "NONE"),
    ("PARQUET", "SNAPPY"),
    ("PARQUET", "GZIP"),
    ("PARQUET", "ZSTD"),
]


def job_id(label: str) -> str:
    return f"test_{label}_{uuid.uuid4().hex[:10]}"


def check_compression(fmt: str, compression: str, data: bytes) -> None:
    """The file is compressed as asked (magic bytes, Avro codec, Parquet column codec)."""
    if fmt in ("CSV", "NEWLINE_DELIMITED_JSON"):
        assert (data[:2] == b"\x1f\x8b") == (compression == "GZIP")
    elif fmt == "AVRO":
        _schema, codec = readers.avro_header(data)
        assert codec == {"NONE": "null", "DEFLATE": "deflate", "SNAPPY": "snappy"}[compression]
    else:
        column = pq.read_metadata(io.BytesIO(data)).row_group(0).column(0)
        assert column.compression == {"NONE": "UNCOMPRESSED"}.get(compression, compression)


# ---- extract jobs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "compression"), CASES)
def test_extract_every_format_and_compression_reads_back_the_source(
    front: FrontKit, fmt: str, compression: str
) -> None:
    table, schema = ("flat", SCALARS) if fmt == "CSV" else ("nested", NESTED)
    prefix = front.prefix()
    config = bigquery.ExtractJobConfig(destination_format=fmt, compression=compression)
    if fmt == "AVRO":
        config.use_avro_logical_types = True
    uri = f"gs://{front.bucket}/{prefix}{table}-*.{EXT[fmt]}"
    jid = job_id("extract")
    job = front.bq.extract_table(front.table(table), uri, job_id=jid, job_config=config, location="US")
    assert job.state == "PENDING" and job.job_id == jid  # the insert's answer
    job.result(timeout=120)
    assert job.state == "DONE" and job.error_result is None
    assert job.destination_uri_file_counts == [1]
    assert job.started is not None and job.ended is not None and job.created <= job.started <= job.ended
    files = front.objects(prefix)
    assert list(files) == [f"{prefix}{table}-000000000000.{EXT[fmt]}"]
    data = files[f"{prefix}{table}-000000000000.{EXT[fmt]}"]
    check_compression(fmt, compression, data)
    expected = front.source_rows(table)
    assert {r["s"] for r in expected} >= {"", None, "\r"}  # the edge values are really there
    readers.assert_same_rows(readers.read(fmt, data, schema), expected)


def test_csv_text_follows_bigquery_quoting(front: FrontKit) -> None:
    prefix = front.prefix()
    config = bigquery.ExtractJobConfig(destination_format="CSV")
    job = front.bq.extract_table(front.table("flat"), f"gs://{front.bucket}/{prefix}f.csv", job_config=config)
    job.result(timeout=60)
    text = front.objects(prefix)[f"{prefix}f.csv"].decode()
    assert text.startswith("id,s,n,b,ts,d,dtm,t,ok,f,i\n")
    lines = {line.split(",", 1)[0]: line for line in text.split("\n")[1:] if line[:1].isdigit()}
    # '' is "" and NULL is nothing; a lone CR is quoted like CR LF and LF
    assert lines["2"].startswith('2,"",-99999999999999999999999999999.999999999,"",0001-01-01 00:00:00 UTC,')
    assert lines["4"] == "4,,,,,,,,,,"
    assert '1,"comma, ""quote""\r\nCRLF\rlone CR\nLF",' in text
    assert '5,"\r",0,AA==,1970-01-01 00:00:00.000001 UTC,,,12:00:00.5,,-0.5,' in text
    assert ",NaN," in lines["2"] and ",Infinity," in text and ",-Infinity," in lines["3"]


def test_json_writes_html_characters_as_bigquery_does(front: FrontKit) -> None:
    """BigQuery's JSON exports write ``<``, ``>`` and ``&`` as ``\\u003c``, ``\\u003e``, ``\\u0026``
    ("profit&loss becomes profit\\u0026loss"); a JSON reader gets the text back as it was."""
    table = front.table(f"html_{uuid.uuid4().hex[:8]}")
    front.bq.create_table(bigquery.Table(table, schema=[bigquery.SchemaField("s", "STRING")]))
    prefix = front.prefix()
    try:  # the module's tables are listed by another test: this one goes again
        assert front.bq.insert_rows_json(table, [{"s": "profit&loss <b>"}]) == []
        config = bigquery.ExtractJobConfig(destination_format="NEWLINE_DELIMITED_JSON")
        front.bq.extract_table(table, f"gs://{front.bucket}/{prefix}h.json", job_config=config).result(timeout=60)
    finally:
        front.bq.delete_table(table, not_found_ok=True)
    text = front.objects(prefix)[f"{prefix}h.json"].decode()
    assert text == '{"s":"profit\\u0026loss \\u003cb\\u003e"}\n'
    assert json.loads(text) == {"s": "profit&loss <b>"}


def test_csv_without_header_and_with_another_delimiter(front: FrontKit) -> None:
    prefix = front.prefix()
    config = bigquery.ExtractJobConfig(destination_format="CSV", print_header=False, field_delimiter="|")
    front.bq.extract_table(front.table("lone_cr"), f"gs://{front.bucket}/{prefix}p.csv", job_config=config).result(
        timeout=60
    )
    data = front.objects(prefix)[f"{prefix}p.csv"]
    rows = readers.csv_module_rows(data, delimiter="|", header=False)
    assert len(rows) == 1000 and rows[0][0] == "0"
    assert sorted(rows, key=lambda r: int(r[0])) == [
        [str(r["id"]), r["s"], r["t2"]] for r in sorted(front.source_rows("lone_cr"), key=lambda r: r["id"])
    ]


@pytest.mark.parametrize("compression", ["NONE", "GZIP"])
def test_a_thousand_rows_with_lone_crs_read_back_as_a_thousand(front: FrontKit, compression: str) -> None:
    prefix = front.prefix()
    config = bigquery.ExtractJobConfig(destination_format="CSV", compression=compression)
    uri = f"gs://{front.bucket}/{prefix}cr-*.csv"
    front.bq.extract_table(front.table("lone_cr"), uri, job_config=config).result(timeout=60)
    (data,) = front.objects(prefix).values()
    source = sorted(front.source_rows("lone_cr"), key=lambda r: r["id"])
    assert sum("\r" in r["s"] for r in source) >= 700
    rows = readers.csv_module_rows(data)
    assert len(rows) == 1000
    assert sorted(rows, key=lambda r: int(r[0])) == [[str(r["id"]), r["s"], r["t2"]] for r in source]
    schema = [
        bigquery.SchemaField("id", "INT64"),
        bigquery.SchemaField("s", "STRING"),
        bigquery.SchemaField("t2", "STRING"),
    ]
    readers.assert_same_rows(readers.pyarrow_csv_rows(data, schema), source)


def test_avro_logical_types_on_and_off(front: FrontKit) -> None:
    schemas = {}
    for logical in (True, False):
        prefix = front.prefix()
        config = bigquery.ExtractJobConfig(destination_format="AVRO", use_avro_logical_types=logical)
        front.bq.extract_table(front.table("nested"), f"gs://{front.bucket}/{prefix}a.avro", job_config=config).result(
            timeout=60
        )
        data = front.objects(prefix)[f"{prefix}a.avro"]
        schema, _codec = readers.avro_header(data)
        schemas[logical] = {f["name"]: f["type"] for f in schema["fields"]}
        readers.assert_same_rows(readers.avro_rows(data, NESTED), front.source_rows("nested"))
    on, off = schemas[True], schemas[False]
    assert on["d"][1] == {"type": "int", "logicalType": "date"} and off["d"][1] == "string"
    assert on["t"][1] == {"type": "long", "logicalType": "time-micros"} and off["t"][1] == "string"
    assert on["ts"][1] == {"type": "long", "logicalType": "timestamp-micros"} == off["ts"][1]
    assert on["n"][1] == {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 9}
    assert on["dtm"][1] == {"type": "string", "logicalType": "datetime"}
    assert on["id"] == "long" and on["arr"] == {"type": "array", "items": "long"}
    assert on["rec"][1]["type"] == "record"


def test_parquet_schema_is_bigquerys(front: FrontKit) -> None:
    prefix = front.prefix()
    config = bigquery.ExtractJobConfig(destination_format="PARQUET")
    front.bq.extract_table(front.table("nested"), f"gs://{front.bucket}/{prefix}p.parquet", job_config=config).result(
        timeout=60
    )
    schema = pq.read_schema(io.BytesIO(front.objects(prefix)[f"{prefix}p.parquet"]))
    types = {f.name: str(f.type) for f in schema}
    assert types["n"] == "decimal128(38, 9)" and types["b"] == "binary" and types["ts"] == "timestamp[us, tz=UTC]"
    assert types["dtm"] == "timestamp[us]" and types["d"] == "date32[day]" and types["t"] == "time64[us]"
    assert not schema.field("id").nullable and schema.field("s").nullable
    assert types["arr"].startswith("list<") and types["rec"].startswith("struct<")


def test_wildcard_makes_twelve_digit_shards(front: FrontKit, small_shards: SecondFront) -> None:
    assert list(small_shards.spool_dir.iterdir()) == []  # a killed front's leftover is gone at start
    assert "removed 1 spool files of an earlier run" in small_shards.log.read_text()
    prefix = front.prefix()
    config = bigquery.ExtractJobConfig(destination_format="NEWLINE_DELIMITED_JSON")
    uri = f"gs://{front.bucket}/{prefix}shard-*.json"
    job = small_shards.client.extract_table(front.table("many"), uri, job_config=config)
    job.result(timeout=60)
    assert list(small_shards.spool_dir.iterdir()) == []  # every shard's spool file went with its upload
    files = front.objects(prefix)
    names = sorted(files)
    assert len(names) >= 3
    assert names == [f"{prefix}shard-{i:012d}.json" for i in range(len(names))]
    assert job.destination_uri_file_counts == [len(names)]
    assert all(len(files[n]) >= SMALL_SHARD_BYTES for n in names[:-1])
    schema = [
        bigquery.SchemaField("id", "INT64"),
        bigquery.SchemaField("s", "STRING"),
        bigquery.SchemaField("t2", "STRING"),
    ]
    rows = [r for n in names for r in readers.json_rows(files[n], schema)]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # shards follow each other in order
    readers.assert_same_rows(rows, front.source_rows("many"))


# ---- EXPORT DATA ---------------------------------------------------------------------------------

SQL_FORMAT = {"CSV": "CSV", "NEWLINE_DELIMITED_JSON": "JSON", "AVRO": "AVRO", "PARQUET": "PARQUET"}


@pytest.mark.parametrize(("fmt", "compression"), CASES)
def test_export_data_with_a_date_parameter(front: FrontKit, fmt: str, compression: str) -> None:
    table, schema = ("flat", SCALARS) if fmt == "CSV" else ("nested", NESTED)
    prefix = front.prefix()
    uri = f"gs://{front.bucket}/{prefix}q-*.{EXT[fmt]}"
    options = f"uri='{uri}', format='{SQL_FORMAT[fmt]}', compression='{compression}', overwrite=true"
    options += ", header=true" if fmt == "CSV" else ", use_avro_logical_types=true" if fmt == "AVRO" else ""
    sql = f"EXPORT DATA OPTIONS({options}) AS\nSELECT * FROM `{front.table(table)}` WHERE d = @day OR d IS NULL"
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("day", "DATE", dt.date(2024, 2, 29))]
    )
    jid = job_id("export_data")
    job = front.bq.query(sql, job_config=config, job_id=jid, job_retry=None)
    assert job.state == "PENDING"
    assert list(job.result(timeout=120)) == []
    assert job.state == "DONE" and job.statement_type == "EXPORT_DATA"
    expected = [r for r in front.source_rows(table) if r["d"] in (None, dt.date(2024, 2, 29))]
    assert sorted(r["id"] for r in expected) == [3, 4, 5, 6]
    stats = front.bq.get_job(jid)._properties["statistics"]["query"]["exportDataStatistics"]
    assert stats == {"fileCount": "1", "rowCount": "4"}
    ((name, data),) = front.objects(prefix).items()
    assert name == f"{prefix}q-000000000000.{EXT[fmt]}"
    check_compression(fmt, compression, data)
    readers.assert_same_rows(readers.read(fmt, data, schema), expected)


def test_export_data_through_jobs_query(front: FrontKit) -> None:
    """query_and_wait uses jobs.query (no job id from the caller): the front answers it too."""
    prefix = front.prefix()
    uri = f"gs://{front.bucket}/{prefix}jq-*.json"
    sql = f"EXPORT DATA OPTIONS(uri='{uri}', format='JSON') AS SELECT id, s FROM `{front.table('flat')}` WHERE id <= @n"
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("n", "INT64", 2)])
    assert list(front.bq.query_and_wait(sql, job_config=config, wait_timeout=60)) == []
    (data,) = front.objects(prefix).values()
    schema = [bigquery.SchemaField("id", "INT64"), bigquery.SchemaField("s", "STRING")]
    assert sorted(readers.json_rows(data, schema), key=lambda r: r["id"]) == [
        {"id": 1, "s": 'comma, "quote"\r\nCRLF\rlone CR\nLF'},
        {"id": 2, "s": ""},
    ]


def test_export_data_without_overwrite_refuses_an_existing_destination(front: FrontKit) -> None:
    prefix = front.prefix()
    sql = f"EXPORT DATA OPTIONS(uri='gs://{front.bucket}/{prefix}o-*.csv', format='CSV') AS SELECT 1 AS x"
    front.bq.query(sql, job_retry=None).result(timeout=60)
    first = front.objects(prefix)
    assert list(first) == [f"{prefix}o-000000000000.csv"] and first[f"{prefix}o-000000000000.csv"] == b"1\n"
    again = front.bq.query(sql, job_retry=None)
    with pytest.raises(gexc.BadRequest, match="overwrite"):
        again.result(timeout=60)
    again.reload()  # result() raised from getQueryResults, before reloading the job
    assert again.state == "DONE" and again.error_result["reason"] == "invalid"


# ---- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "uri", "settings", "reason", "message"),
    [
        ("missing", "gs://{bucket}/{prefix}m-*.csv", {}, "notFound", "Not found: Table {project}:{dataset}.missing"),
        ("flat", "s3://elsewhere/x-*.csv", {}, "invalid", "Invalid extract destination URI 's3://elsewhere/x-*.csv'"),
        ("flat", "gs://{bucket}/{prefix}a-*-*.csv", {}, "invalid", "Invalid extract destination URI"),
        ("flat", "gs://no-such-bucket-{prefix}x-*.csv", {}, "notFound", "Not found: Bucket"),
        (
            "flat",
            "gs://{bucket}/{prefix}z-*.csv",
            {"compression": "ZSTD"},
            "invalid",
            "Unsupported compression ZSTD for CSV",
        ),
        (
            "flat",
            "gs://{bucket}/{prefix}s-*.json",
            {"destination_format": "NEWLINE_DELIMITED_JSON", "compression": "SNAPPY"},
            "invalid",
            "Unsupported compression SNAPPY",
        ),
        (
            "flat",
            "gs://{bucket}/{prefix}x-*.x",
            {"destination_format": "ORC"},
            "invalid",
            "Invalid destination format: ORC",
        ),
        (
            "nested",
            "gs://{bucket}/{prefix}n-*.csv",
            {},
            "invalid",
            "Operation cannot be performed on a nested schema. Field: rec",
        ),
    ],
)
def test_failed_extract_jobs_report_like_bigquery(
    front: FrontKit, table: str, uri: str, settings: dict, reason: str, message: str
) -> None:
    prefix = front.prefix().replace("/", "-").rstrip("-") + "/"
    values = {"bucket": front.bucket, "prefix": prefix, "project": front.project, "dataset": front.dataset}
    config = bigquery.ExtractJobConfig(**settings)
    job = front.bq.extract_table(front.table(table), uri.format(**values), job_config=config)
    with pytest.raises(gexc.GoogleAPICallError) as info:
        job.result(timeout=60)
    assert job.state == "DONE"
    assert job.error_result["reason"] == reason
    assert message.format(**values) in job.error_result["message"]
    assert job.errors == [job.error_result]
    assert info.value.code == {"notFound": 404, "invalid": 400}[reason]
    assert front.objects(prefix) == {}


def test_failed_export_data_query(front: FrontKit) -> None:
    prefix = front.prefix()
    sql = f"EXPORT DATA OPTIONS(uri='gs://{front.bucket}/{prefix}e-*.csv', format='CSV') AS SELECT nope FROM `{front.table('flat')}`"
    job = front.bq.query(sql, job_retry=None)
    with pytest.raises(gexc.BadRequest):
        job.result(timeout=60)
    job.reload()  # result() raised from getQueryResults, before reloading the job
    assert job.state == "DONE" and job.error_result["reason"] == "invalidQuery"
    bad = front.bq.query(
        f"EXPORT DATA OPTIONS(uri='gs://{front.bucket}/{prefix}no-wildcard.csv', format='CSV') AS SELECT 1",
        job_retry=None,
    )
    with pytest.raises(gexc.BadRequest, match="exactly one"):
        bad.result(timeout=60)
    assert front.objects(prefix) == {}


# ---- job ids, re-attach, pass-through ----------------------------------------------------------------


def test_reattach_by_job_id(front: FrontKit) -> None:
    prefix = front.prefix()
    jid = job_id("reattach")
    uri = f"gs://{front.bucket}/{prefix}r-*.parquet"
    config = bigquery.ExtractJobConfig(destination_format="PARQUET")
    first = front.bq.extract_table(front.table("nested"), uri, job_id=jid, job_config=config, location="US")
    first.result(timeout=60)
    generations = {b.name: b.generation for b in front.gcs.list_blobs(front.bucket, prefix=prefix)}
    with pytest.raises(gexc.Conflict, match="Already Exists: Job"):
        front.bq.extract_table(front.table("nested"), uri, job_id=jid, job_config=config, location="US")
    again = front.bq.get_job(jid, location="US")
    assert isinstance(again, bigquery.ExtractJob)
    assert (again.job_id, again.state, again.location) == (jid, "DONE", "US")
    assert again.destination_uris == [uri] and again.destination_uri_file_counts == [1]
    assert again.created == first.created and again.ended == first.ended
    assert {b.name: b.generation for b in front.gcs.list_blobs(front.bucket, prefix=prefix)} == generations
    query_id = job_id("reattach_query")
    sql = f"EXPORT DATA OPTIONS(uri='gs://{front.bucket}/{prefix}rq-*.csv', format='CSV', overwrite=true) AS SELECT 1 AS x"
    front.bq.query(sql, job_id=query_id, job_retry=None).result(timeout=60)
    with pytest.raises(gexc.Conflict):
        front.bq.query(sql, job_id=query_id, job_retry=None)
    found = front.bq.get_job(query_id)
    assert isinstance(found, bigquery.QueryJob) and found.state == "DONE" and found.query == sql


def test_a_job_id_taken_in_bqemulator_is_a_duplicate_too(front: FrontKit) -> None:
    jid = job_id("taken")
    front.bq.query("SELECT 1", job_id=jid, job_retry=None).result(timeout=60)
    config = bigquery.ExtractJobConfig(destination_format="CSV")
    with pytest.raises(gexc.Conflict):
        front.bq.extract_table(front.table("flat"), f"gs://{front.bucket}/x/{jid}-*.csv", job_id=jid, job_config=config)


def test_a_query_job_for_bqemulator_under_a_taken_id_is_a_duplicate(front: FrontKit) -> None:
    # BigQuery answers 409 for a taken job id; bqemulator alone would run a second job under it.
    jid = job_id("query_taken")
    first = front.bq.query("SELECT 1 AS one", job_id=jid, job_retry=None)
    first.result(timeout=60)
    with pytest.raises(gexc.Conflict, match=f"Already Exists: Job {front.bq.project}:US.{jid}"):
        front.bq.query("SELECT 2 AS two", job_id=jid, job_retry=None)
    again = front.bq.get_job(jid)
    assert again.created == first.created and again.query == "SELECT 1 AS one"
    extract = job_id("extract_taken")
    front.bq.extract_table(front.table("flat"), f"gs://{front.bucket}/x/{extract}-*.csv", job_id=extract).result(
        timeout=60
    )
    with pytest.raises(gexc.Conflict):
        front.bq.query("SELECT 1", job_id=extract, job_retry=None)  # taken by a job of the front's own


def test_a_finished_bqemulator_job_is_answered_by_the_front(front: FrontKit) -> None:
    """A DONE job never changes: the front answers jobs.get, getQueryResults and the 409 check of a
    job bqemulator finished from what it passed on (bqemulator answers in turn, behind its
    queries). Shown by deleting the job in bqemulator behind the front's back."""
    import urllib.request

    jid = job_id("finished")
    done = front.bq.query("SELECT 7 AS seven", job_id=jid, job_retry=None)
    assert [r["seven"] for r in done.result(timeout=60)] == [7]
    behind = f"{front.stack.bqemulator_url}/bigquery/v2/projects/{front.project}/jobs/{jid}"
    urllib.request.urlopen(urllib.request.Request(behind + "/delete", method="DELETE"), timeout=10).close()
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(behind, timeout=10)  # bqemulator has forgotten it
    again = front.bq.get_job(jid)
    assert again.state == "DONE" and again.query == "SELECT 7 AS seven" and again.created == done.created
    assert [r["seven"] for r in again.result(timeout=60)] == [7]
    with pytest.raises(gexc.Conflict):
        front.bq.query("SELECT 8", job_id=jid, job_retry=None)


def test_everything_else_passes_through_to_bqemulator(front: FrontKit) -> None:
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("d", "DATE", dt.date(9999, 12, 31))]
    )
    job = front.bq.query(f"SELECT id FROM `{front.table('flat')}` WHERE d = @d", job_config=config)
    assert [r["id"] for r in job.result(timeout=60)] == [2]
    assert front.bq.get_job(job.job_id).state == "DONE"  # a bqemulator job, found through the front
    assert sorted(t.table_id for t in front.bq.list_tables(f"{front.project}.{front.dataset}")) == [
        "flat",
        "lone_cr",
        "many",
        "nested",
    ]
    with pytest.raises(gexc.NotFound):
        front.bq.get_job(job_id("never"))
