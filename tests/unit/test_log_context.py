"""run_id/table/destination on every line: of worker threads, of the stage runner's failure
lines, and of the standard library's records (paramiko, urllib3), which become JSON lines too."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.boxapi import BoxApiServer
from devstack.state import StackInfo
from shared import log
from shared.errors import PermanentError, TransientError
from shared.gcp import gcs
from shared.gcp.reader import BLOCK_BYTES, ObjectReader
from tests.box.support import box_settings
from tests.cloudevents import pubsub_event
from tests.sftp.tcp_proxy import CuttingProxy

WHERE = {"run_id": "20261205T020000Z-ctx001", "table": "sales.orders", "destination": "box"}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log.configure("json", stream=stream)
    yield stream
    log.configure()


def lines(stream: io.StringIO, message: str | None = None) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in found if message is None or line["message"] == message]


def where(line: dict[str, Any]) -> dict[str, Any]:
    return {key: line.get(key) for key in WHERE}


# --- worker threads -------------------------------------------------------------------------


def test_a_thread_running_in_context_logs_the_context_bound_where_it_was_made(captured: io.StringIO) -> None:
    def work(n: int) -> int:
        log.get_logger("worker").info("working", n=n)
        return n

    with log.bind(**WHERE):
        target = log.in_context(work)
    threads = [threading.Thread(target=target, args=(n,)) for n in range(3)]  # one callable, overlapping runs
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(line["n"] for line in lines(captured, "working")) == [0, 1, 2]
    assert [where(line) for line in lines(captured, "working")] == [WHERE] * 3


@pytest.fixture
def stored(bare_stack_env: StackInfo) -> gcs.ObjectInfo:
    return gcs.write(bare_stack_env.bucket, f"log-context/{uuid.uuid4().hex}/big.bin", os.urandom(3 * BLOCK_BYTES))


@pytest.fixture
def cutting_client(bare_stack_env: StackInfo) -> Iterator[Any]:
    """A storage client whose downloads are cut after one block per connection."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = int(bare_stack_env.gcs_url.rsplit(":", 1)[1].strip("/"))
    proxy = CuttingProxy(port, cut_reply_after_bytes=BLOCK_BYTES)
    try:
        yield storage.Client(
            project=bare_stack_env.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{proxy.port}"},
        )
    finally:
        proxy.close()


def assert_resumes_log_the_context(
    captured: io.StringIO, stored: gcs.ObjectInfo, client: Any, read: Callable[[ObjectReader], int], prefetch: int = 0
) -> None:
    """``read`` takes the whole object through a thread of its own under a bound context, across
    the cuts of ``client``; every resume that thread logs carries the context."""
    with log.bind(**WHERE), ObjectReader(stored, client=client, prefetch=prefetch) as reader:
        assert read(reader) == stored.size
    resumes = lines(captured, "GCS stream interrupted; resuming")
    assert resumes and [where(line) for line in resumes] == [WHERE] * len(resumes)


def test_the_gcs_prefetch_thread_logs_its_resumes_with_the_context(
    captured: io.StringIO, stored: gcs.ObjectInfo, cutting_client: Any
) -> None:
    assert_resumes_log_the_context(captured, stored, cutting_client, lambda reader: len(reader.read()), prefetch=2)


def test_the_drive_read_ahead_thread_logs_with_the_context(
    captured: io.StringIO, stored: gcs.ObjectInfo, cutting_client: Any
) -> None:
    from shared.destinations.drive.readahead import ReadAhead

    def read(reader: ObjectReader) -> int:
        ahead = ReadAhead(reader, stored.name)
        try:
            ahead.ask(stored.size)  # read on the read-ahead thread, resumed there after each cut
            return len(ahead.take())
        finally:
            ahead.close()

    assert_resumes_log_the_context(captured, stored, cutting_client, read)


def test_the_sftp_feeder_thread_logs_with_the_context(
    captured: io.StringIO, stored: gcs.ObjectInfo, cutting_client: Any
) -> None:
    from shared.destinations.sftp.stream import ChunkFeeder

    def read(reader: ObjectReader) -> int:
        feeder = ChunkFeeder(reader, stored.size, what=stored.name).start()  # reads on its own thread
        taken = 0
        while (chunk := feeder.next_chunk()) is not None:
            assert chunk != "empty"
            taken += len(chunk[1])
            feeder.acknowledged(0, taken)  # as a writer would: the feeder paces itself on these
        return feeder.finish().size

    assert_resumes_log_the_context(captured, stored, cutting_client, read)


@pytest.fixture(scope="module")
def box_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxApiServer]:
    server = BoxApiServer(tmp_path_factory.mktemp("boxapi") / "data").start()
    yield server
    server.stop()


def test_box_part_threads_log_their_retries_with_the_context(captured: io.StringIO, box_server: BoxApiServer) -> None:
    from shared.destinations.box.destination import BoxDestination

    data = os.urandom(20_000_000)  # above the chunked threshold: parts sent by the part pool
    box = BoxDestination(box_settings(box_server, "0"))
    box_server.add_fault("upload_part", "error", status=503, count=2, retry_after=0.05)
    try:
        with log.bind(**WHERE):
            result = box.put(f"ctx-{uuid.uuid4().hex[:8]}/big.bin", io.BytesIO(data), len(data))
    finally:
        box.http.close()
    assert result.sha1 == hashlib.sha1(data).hexdigest()
    retries = lines(captured, "retrying")
    assert len(retries) >= 2 and [where(line) for line in retries] == [WHERE] * len(retries)


# --- the stage runner's failure lines ---------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (TransientError("GCS answered 503"), "transient failure; will be retried"),
        (PermanentError("no such dataset"), "permanent failure; acknowledging"),
        (RuntimeError("a bug"), "unexpected failure; will be retried"),
    ],
)
def test_the_runners_failure_line_carries_the_context_of_the_error(
    captured: io.StringIO, bare_stack_env: StackInfo, error: Exception, message: str
) -> None:
    from shared.ids import Stage
    from shared.stages import runner

    def handler(_event: Any, _config: Any) -> None:
        with log.bind(**WHERE):
            raise error

    event = pubsub_event(bare_stack_env.project, "table-exports", b"{}", subscriber="export-table")
    try:
        runner.run(Stage.EXPORT_TABLE, event, handler)
    except Exception as exc:  # noqa: BLE001 - transient and unexpected ones are re-raised for a redelivery
        assert exc is error
    [line] = lines(captured, message)
    assert where(line) == WHERE and line["stage"] == "export_table"


# --- the standard library's records -----------------------------------------------------------


def test_standard_library_records_are_json_lines_with_severity_and_context(captured: io.StringIO) -> None:
    library = logging.getLogger("urllib3.connectionpool")
    with log.bind(**WHERE):
        library.warning("Connection pool is full, discarding connection: %s", "storage.googleapis.com")
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError:
            library.exception("request failed")
    text = captured.getvalue()
    assert len(text.splitlines()) == 2, text  # the traceback inside its line, not one line per line
    full, failed = lines(captured)
    assert full["message"] == "Connection pool is full, discarding connection: storage.googleapis.com"
    assert full["severity"] == "WARNING" and full["logger_name"] == "urllib3.connectionpool"
    assert failed["severity"] == "ERROR" and "ConnectionResetError: reset by peer" in failed["exception"]
    assert where(full) == WHERE and where(failed) == WHERE


def test_configure_again_replaces_its_handler_instead_of_adding_one(captured: io.StringIO) -> None:
    log.configure("json", stream=captured)
    log.configure("json", stream=captured)
    logging.getLogger("urllib3").warning("once")
    assert len(lines(captured, "once")) == 1


def test_google_libraries_warnings_reach_the_log_but_not_their_request_dumps(captured: io.StringIO) -> None:
    from google.auth import _helpers

    google_auth = logging.getLogger("google.auth.transport.requests")
    assert not _helpers.is_logging_enabled(google_auth)  # as on a first request: may detach "google"
    with log.bind(**WHERE):
        google_auth.warning("token refresh failed; retrying")
    [line] = lines(captured)
    assert line["message"] == "token refresh failed; retrying" and where(line) == WHERE
    log.configure("json", stream=captured, level="debug")
    assert not _helpers.is_logging_enabled(google_auth)  # its DEBUG request/response lines


def _resetting_ssh_server() -> tuple[socket.socket, int]:
    """A server that says it speaks SSH, then resets the connection during the handshake."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.recv(4096)
        time.sleep(0.2)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_paramikos_transport_errors_are_json_lines_and_its_info_chatter_is_dropped(captured: io.StringIO) -> None:
    from shared.config.destinations import SftpPartner
    from shared.destinations.sftp.connect import verified_host_key

    server, port = _resetting_ssh_server()
    partner = SftpPartner.model_validate(
        {"host": "127.0.0.1", "port": port, "username": "u", "password": "x", "host_key_fingerprint": "SHA256:abc"}
    )
    with server, pytest.raises(TransientError):
        verified_host_key("acme", partner)
    deadline = time.monotonic() + 10
    while not captured.getvalue() and time.monotonic() < deadline:  # written by paramiko's own thread
        time.sleep(0.05)
    found = lines(captured)
    assert [(line["logger_name"], line["severity"]) for line in found] == [("paramiko.transport", "ERROR")], found
    assert found[0]["message"].startswith("Socket exception: Connection reset by peer")
