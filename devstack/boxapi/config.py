"""Settings of one Box API server process (command-line flags, some adjustable at run time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Box's chunked-upload API refuses files below this many bytes (error file_size_too_small).
MIN_SESSION_FILE_SIZE = 20_000_000
# Box hands out 8 MiB parts for ordinary sizes.
BASE_PART_SIZE = 8 * 1024 * 1024
# Box's documented cap on the number of parts of one session.
MAX_PARTS = 10_000


@dataclass
class AppCredentials:
    """A Box platform app: what JWT and client-credentials token requests are checked against."""

    client_id: str
    client_secret: str
    enterprise_id: str
    # kid -> PEM public key; kid "*" matches any kid the assertion names.
    public_keys: dict[str, str] = field(default_factory=dict)


@dataclass
class ServerConfig:
    """Everything the server needs to start.

    ``token_ttl_s``: lifetime of issued access tokens (Box: 3600 s).
    ``session_ttl_s``: lifetime of upload sessions (Box: 7 days).
    ``commit_wait_s``: how long a commit request waits for the assembly before answering
    202 with ``Retry-After`` (Box answers 202 while it is still processing parts).
    ``download_ready_s``: how long after an upload a download of that version answers 202 with
    ``Retry-After`` and no body (Box's "file not ready"); 0, the default, serves it at once.
    Counted from the version's ``created_at``, which has whole seconds.
    ``max_upload_size``: the user's file size cap (``max_upload_size`` on the user object).
    ``calls_per_minute`` / ``uploads_per_minute``: Box's per-user rate limits (ratelimit.py);
    None (the default) answers every call.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    developer_token: str | None = None
    enterprise_id: str = "900000001"
    apps: list[AppCredentials] = field(default_factory=list)
    token_ttl_s: float = 3600.0
    session_ttl_s: float = 7 * 24 * 3600.0
    commit_wait_s: float = 30.0
    download_ready_s: float = 0.0
    max_upload_size: int = 50 * 1024**3
    calls_per_minute: float | None = None
    uploads_per_minute: float | None = None
    log_level: str = "warning"
