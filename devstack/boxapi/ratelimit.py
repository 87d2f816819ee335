"""Box's user-based rate limits, when configured (off by default, as a developer account feels).

Box limits each user to about 1,000 API calls a minute and 240 upload requests a minute
(https://developer.box.com/guides/api-calls/permissions-and-errors/rate-limits/); past them it
answers 429 ``rate_limit_exceeded`` with ``Retry-After``. Here both are sliding windows of 60 s
per user: ``calls_per_minute`` counts every authenticated API call, ``uploads_per_minute`` the
calls that carry file content (:data:`UPLOAD_OPERATIONS`: whole-file uploads and each chunked
upload part — whether Box counts parts as uploads is not documented; counting them is the
stricter reading). A refused call is not counted, so a client that waits ``Retry-After`` gets in.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable

from .errors import BoxError

WINDOW_S = 60.0
UPLOAD_OPERATIONS = frozenset({"upload_file", "upload_file_version", "upload_part"})


class RateLimiter:
    """Per-user sliding windows; ``limits()`` gives (calls, uploads) per minute, None = no limit."""

    def __init__(self, limits: Callable[[], tuple[float | None, float | None]], clock=time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._calls: dict[str, deque[float]] = defaultdict(deque)
        self._uploads: dict[str, deque[float]] = defaultdict(deque)
        self.refused = 0

    def admit(self, user_id: str, operation: str) -> None:
        """Count the call, or raise the 429 Box would answer (with ``Retry-After``)."""
        calls_limit, uploads_limit = self._limits()
        now = self._clock()
        checks = [(self._calls[user_id], calls_limit)]
        if operation in UPLOAD_OPERATIONS:
            checks.append((self._uploads[user_id], uploads_limit))
        wait = 0.0
        for window, limit in checks:
            while window and window[0] <= now - WINDOW_S:
                window.popleft()
            if limit is not None and len(window) >= limit:
                wait = max(wait, window[0] + WINDOW_S - now)
        if wait > 0:
            self.refused += 1
            raise BoxError(
                429,
                "rate_limit_exceeded",
                "Request rate limit exceeded, please try again later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        for window, _ in checks:
            window.append(now)

    def reset(self) -> None:
        self._calls.clear()
        self._uploads.clear()
        self.refused = 0
