"""Structured JSON logs in Cloud Logging's format, with run_id/table/destination on every line.

Cloud Logging reads ``severity`` and ``message`` from a JSON line on stdout/stderr. Context
(``run_id``, ``table``, ``destination``, ``stage``, ``message_id``) is bound with
:func:`bind` (contextvars, so concurrent requests do not mix) and always present, null when
unknown. ``OFFSITE_LOG_FORMAT=console`` gives readable lines for terminals;
``OFFSITE_LOG_LEVEL`` (debug, info, warning, error; default info) drops lines below it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

CONTEXT_KEYS = ("run_id", "table", "destination")
_SEVERITY = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
    "critical": "CRITICAL",
    "exception": "ERROR",
}
_configured = False
# The attribute that carries an error's bind() context to the stage that reports it. Any exception
# type can pass through bind(), so the attribute is set dynamically (getattr/setattr).
ERROR_CONTEXT_ATTR = "context"


def _cloud_logging_fields(_logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["severity"] = _SEVERITY.get(event.pop("level", method), "DEFAULT")
    event["message"] = event.pop("event", "")
    for key in CONTEXT_KEYS:
        event.setdefault(key, None)
    return event


def _mask_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    from shared.secrets import Secret

    for key, value in list(event.items()):
        if isinstance(value, Secret):
            event[key] = repr(value)
    return event


_WRITE_LOCK = threading.Lock()


class LineWriter:
    """A structlog logger writing each line with ONE ``os.write`` of the whole line: lines from
    threads and from other processes sharing the descriptor (gunicorn workers, a log file a
    launcher gives stdout and stderr) never run together — a single write to an O_APPEND file is
    never interleaved, and to a pipe not below PIPE_BUF (4 KiB). A stream without a descriptor
    (a test's StringIO) is written under a lock instead."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        try:
            stream.flush()
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None

    def msg(self, message: str) -> None:
        data = (message + "\n").encode("utf-8", "backslashreplace")
        with _WRITE_LOCK:
            if self._fd is None:
                self._stream.write(data.decode("utf-8"))
                self._stream.flush()
                return
            view = memoryview(data)
            while view:  # one call in practice; a short write (a full pipe) is finished, never dropped
                written = os.write(self._fd, view)
                view = view[written:]

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def level_from(text: str | None) -> int:
    """``OFFSITE_LOG_LEVEL``'s value as a logging level; unset is info, anything else unknown is an error."""
    if not text:
        return logging.INFO
    try:
        return LEVELS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"OFFSITE_LOG_LEVEL: {text!r} is not one of {', '.join(LEVELS)}") from None


def configure(fmt: str | None = None, stream: Any = None, level: str | None = None) -> None:
    """Set up structlog once per process (idempotent; tests may call again with a stream)."""
    global _configured
    fmt = fmt or os.environ.get("OFFSITE_LOG_FORMAT", "json")
    threshold = level_from(level or os.environ.get("OFFSITE_LOG_LEVEL"))
    target = stream or sys.stderr  # the stream of this moment (a test's captured stderr comes later)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if fmt == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.format_exc_info,
            _mask_secrets,
            _cloud_logging_fields,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=lambda *_: LineWriter(target),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(name: str | None = None) -> Any:
    if not _configured:
        configure()
    return structlog.get_logger(logger_name=name) if name else structlog.get_logger()


@contextmanager
def bind(**context: Any) -> Iterator[None]:
    """Add context to every log line inside the ``with`` block (e.g. run_id, table, destination)."""
    tokens = structlog.contextvars.bind_contextvars(**{k: v for k, v in context.items()})
    try:
        yield
    except Exception as exc:
        # Errors remember where they happened, so the stage that reports them can say so.
        carried = getattr(exc, ERROR_CONTEXT_ATTR, None)
        if not isinstance(carried, dict):
            carried = {}
            try:
                setattr(exc, ERROR_CONTEXT_ATTR, carried)
            except AttributeError:
                pass
        for key, value in context.items():
            carried.setdefault(key, value)
        raise
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
