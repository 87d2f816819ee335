"""Log lines from many threads in several processes sharing one file never run together."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path

from shared import log

LINES_PER_THREAD = 150
THREADS = 4
PROCESSES = 3
PAD = "x" * 20_000  # longer than a stream buffer: a buffered writer splits such a line into several writes


def _writer(path: str, proc: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    stream = os.fdopen(fd, "w")
    log.configure(stream=stream)
    logger = log.get_logger("lines")

    def run(thread: int) -> None:
        for i in range(LINES_PER_THREAD):
            logger.info("line", proc=proc, thread=thread, i=i, pad=PAD)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_lines_stay_whole(tmp_path: Path) -> None:
    path = tmp_path / "shared.log"
    path.touch()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), p)) for p in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == PROCESSES * THREADS * LINES_PER_THREAD
    seen = {(e["proc"], e["thread"], e["i"]) for e in map(json.loads, lines)}  # each line parses whole
    assert len(seen) == len(lines)


def test_a_stream_without_a_descriptor_gets_whole_lines() -> None:
    import io

    buffer = io.StringIO()
    log.configure(stream=buffer)
    try:
        log.get_logger("x").info("hello", n=1)
        assert json.loads(buffer.getvalue().splitlines()[-1])["n"] == 1
    finally:
        log.configure()
