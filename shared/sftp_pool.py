"""How many SSH sessions this process holds to each partner (``max_sessions``), and reusing them.

Partners limit concurrent logins; going over gets connections refused or, worse, the account
locked. Per process, one :class:`SessionLimiter` per partner counts open sessions (idle ones
kept for reuse count too). Across the cloud, the bound is the function's ``max_instances`` ×
its per-instance concurrency × ``connections_per_file``: keep that at or below
``max_sessions`` (docs/sftp.md).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from shared.config import SftpPartner
from shared.errors import TransientError
from shared.sftp_connect import SftpSession, open_session

SESSION_WAIT_S = 300.0  # waiting for a free session; past it the delivery is retried later


class SessionLimiter:
    """A counting semaphore whose permits can be taken several at once or opportunistically."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, timeout_s: float) -> bool:
        with self._cond:
            if not self._cond.wait_for(lambda: self.used < self.limit, timeout=timeout_s):
                return False
            self.used += 1
            return True

    def try_acquire(self) -> bool:
        with self._cond:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def release(self) -> None:
        with self._cond:
            self.used = max(0, self.used - 1)
            self._cond.notify()


_limiters: dict[tuple[str, str, int, str, int], SessionLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(name: str, partner: SftpPartner) -> SessionLimiter:
    """The process-wide limiter of this partner (one per name, host, port, user and limit)."""
    key = (name, partner.host, partner.port, partner.username, partner.max_sessions)
    with _limiters_lock:
        if key not in _limiters:
            _limiters[key] = SessionLimiter(partner.max_sessions)
        return _limiters[key]


class SessionPool:
    """Sessions to one partner: reused when idle, opened on demand up to the partner's limit."""

    def __init__(self, name: str, partner: SftpPartner, *, wait_s: float = SESSION_WAIT_S) -> None:
        self.name, self.partner, self.wait_s = name, partner, wait_s
        self._limiter = limiter_for(name, partner)
        self._idle: list[SftpSession] = []
        self._lock = threading.Lock()

    def _take_idle(self) -> SftpSession | None:
        with self._lock:
            while self._idle:
                session = self._idle.pop()
                if session.alive():
                    return session
                session.close()
                self._limiter.release()
        return None

    def _open(self) -> SftpSession:
        try:
            return open_session(self.name, self.partner)
        except BaseException:
            self._limiter.release()
            raise

    def acquire(self) -> SftpSession:
        """An exclusive session; waits for a free one up to ``wait_s`` (then TransientError)."""
        session = self._take_idle()
        if session is not None:
            return session
        if not self._limiter.acquire(self.wait_s):
            raise TransientError(
                f"sftp:{self.name}: all {self.partner.max_sessions} sessions (max_sessions) busy for {self.wait_s:.0f}s",
                retry_after=30,
            )
        return self._open()

    def acquire_extra(self, count: int) -> list[SftpSession]:
        """Up to ``count`` more sessions without waiting (for ``connections_per_file``)."""
        extra: list[SftpSession] = []
        while len(extra) < count:
            session = self._take_idle()
            if session is None:
                if not self._limiter.try_acquire():
                    break
                try:
                    session = self._open()
                except Exception:  # noqa: BLE001 - extra connections are an optimisation only
                    break
            extra.append(session)
        return extra

    def release(self, session: SftpSession, healthy: bool = True) -> None:
        """Return a session; an unhealthy (or dead) one is closed instead of reused."""
        if healthy and session.alive():
            with self._lock:
                self._idle.append(session)
            return
        session.close()
        self._limiter.release()

    @contextlib.contextmanager
    def session(self) -> Iterator[SftpSession]:
        """``with pool.session() as s:``; the session is dropped if the block raises."""
        session = self.acquire()
        healthy = False
        try:
            yield session
            healthy = True
        finally:
            self.release(session, healthy)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()
            self._limiter.release()
