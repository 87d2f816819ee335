from __future__ import annotations

import io
import json

import pytest

from shared import log
from shared.secrets import Secret


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    log.configure("json", stream=stream)
    yield stream
    log.configure()


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_cloud_logging_shape_with_context_on_every_line(captured: io.StringIO) -> None:
    logger = log.get_logger("t")
    logger.info("outside")
    with log.bind(run_id="r1", table="sales.orders", destination="box"):
        logger.warning("inside", files=3)
    first, second = lines(captured)
    assert first["severity"] == "INFO" and first["message"] == "outside"
    assert first["run_id"] is None and first["table"] is None and first["destination"] is None
    assert second == {
        **second,
        "severity": "WARNING",
        "message": "inside",
        "run_id": "r1",
        "table": "sales.orders",
        "destination": "box",
        "files": 3,
    }


def test_secrets_are_masked_in_logs(captured: io.StringIO) -> None:
    log.get_logger("t").info("auth", token=Secret("super-secret-token"))
    assert "super-secret-token" not in captured.getvalue()
    assert lines(captured)[0]["token"] == "Secret(***)"


def test_errors_leaving_a_bind_block_carry_the_context() -> None:
    with pytest.raises(ValueError) as info:
        with log.bind(run_id="r9", destination="sftp:acme"):
            raise ValueError("boom")
    assert info.value.context == {"run_id": "r9", "destination": "sftp:acme"}


def test_the_level_drops_lines_below_it_and_a_bad_level_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setenv("OFFSITE_LOG_LEVEL", "warning")
    log.configure("json", stream=stream)
    try:
        logger = log.get_logger("t")
        logger.info("quiet")
        logger.warning("loud")
        assert [line["message"] for line in lines(stream)] == ["loud"]
        monkeypatch.setenv("OFFSITE_LOG_LEVEL", "chatty")
        with pytest.raises(ValueError, match="OFFSITE_LOG_LEVEL: 'chatty' is not one of debug, info, warning, error"):
            log.configure("json", stream=stream)
    finally:
        monkeypatch.delenv("OFFSITE_LOG_LEVEL")
        log.configure()
