"""Structured JSON logs in Cloud Logging's format, with run_id/table/destination on every line.

Cloud Logging reads ``severity`` and ``message`` from a JSON line on stdout/stderr. Context
(``run_id``, ``table``, ``destination``, ``stage``, ``message_id``) is bound with
:func:`bind` (contextvars, so concurrent requests do not mix) and always present, null when
unknown. ``OFFSITE_LOG_FORMAT=console`` gives readable lines for terminals;
``OFFSITE_LOG_LEVEL`` (debug, info, warning, error; default info) drops lines below it.

The standard library's records (paramiko, urllib3, google-auth) become the same lines, through
structlog's ProcessorFormatter on a root handler: one JSON line each, traceback included.
A thread started for a run's work gets the run's context through :func:`in_context`.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import structlog
from structlog.typing import Processor

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
P = ParamSpec("P")
R = TypeVar("R")


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


def _record_logger_name(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    record = event.get("_record")
    if record is not None:
        event.setdefault("logger_name", record.name)
    return event


class _RecordHandler(logging.Handler):
    """The root handler: a standard library record as one line of ours, written as ours are."""

    def __init__(self, writer: LineWriter, formatter: logging.Formatter) -> None:
        super().__init__()
        self._writer = writer
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.msg(self.format(record))
        except Exception:  # noqa: BLE001 - logging's own policy: report on stderr, never raise
            self.handleError(record)


def _route_standard_logging(
    writer: LineWriter, context: list[Processor], output: list[Processor], threshold: int
) -> None:
    """Replace the handler an earlier configure() installed (never someone else's, e.g. pytest's)."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*context, _record_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *output],
    )
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _RecordHandler)]:
        root.removeHandler(handler)
    root.addHandler(_RecordHandler(writer, formatter))
    # Libraries' INFO is their chatter (paramiko: every handshake step): warnings and worse,
    # unless OFFSITE_LOG_LEVEL=debug asks for everything.
    libraries = threshold if threshold == logging.DEBUG else max(threshold, logging.WARNING)
    root.setLevel(libraries)
    logging.getLogger("paramiko").setLevel(max(threshold, logging.WARNING))
    # google-auth cuts an unconfigured "google" logger off the root (its warnings then go out as
    # bare text); configured, it keeps it. DEBUG there is whole requests: left out even at debug.
    google = logging.getLogger("google")
    google.setLevel(max(libraries, logging.INFO))
    google.propagate = True


def configure(fmt: str | None = None, stream: Any = None, level: str | None = None) -> None:
    """Set up structlog and the standard library's logging once per process (idempotent; tests
    may call again with a stream)."""
    global _configured
    fmt = fmt or os.environ.get("OFFSITE_LOG_FORMAT", "json")
    threshold = level_from(level or os.environ.get("OFFSITE_LOG_LEVEL"))
    target = stream or sys.stderr  # the stream of this moment (a test's captured stderr comes later)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if fmt == "console" else structlog.processors.JSONRenderer()
    )
    context: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]
    output: list[Processor] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _mask_secrets,
        _cloud_logging_fields,
        renderer,
    ]
    structlog.configure(
        processors=[*context, *output],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=lambda *_: LineWriter(target),
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(LineWriter(target), context, output, threshold)
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


def in_context(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` to run on another thread with the context bound here (run_id, table, destination):
    a thread starts with an empty one, so its lines would say null. Pass it as the thread's target
    or to ``pool.submit``."""
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)  # a copy per call: calls may overlap

    return run
