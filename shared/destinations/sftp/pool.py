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
import time
from collections.abc import Iterator

import paramiko

from shared.config import SftpPartner
from shared.destinations.sftp.connect import IncompatiblePeer, SftpSession, offered_host_key
from shared.destinations.sftp.session import open_session
from shared.errors import TransientError
from shared.log import get_logger
from shared.per_process import per_process

log = get_logger(__name__)

SESSION_WAIT_S = 300.0  # waiting for a free session; past it the delivery is retried later
IDLE_TIMEOUT_S = 60.0  # an idle session older than this is closed, not reused
MAX_AGE_S = 600.0  # no session is reused past this age: reconnecting re-verifies the host key
HOST_KEY_RECHECK_S = 0.0  # a reused session is preceded by a host-key probe (a handshake, no login) at most this often


class SessionLimiter:
    """Counts a partner's open sessions in this process; ``cond`` guards ``used`` and every pool's
    idle list, and is notified whenever a session is returned or closed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.cond = threading.Condition()


def limiter_for(name: str, partner: SftpPartner) -> SessionLimiter:
    """The process-wide limiter of this partner (one per name, host, port, user and limit)."""
    return _limiter(name, partner.host, partner.port, partner.username, partner.max_sessions)


@per_process
def _limiter(name: str, host: str, port: int, username: str, max_sessions: int) -> SessionLimiter:
    return SessionLimiter(max_sessions)


class SessionPool:
    """Sessions to one partner: reused when idle, opened on demand up to the partner's limit."""

    def __init__(
        self,
        name: str,
        partner: SftpPartner,
        *,
        wait_s: float = SESSION_WAIT_S,
        recheck_s: float = HOST_KEY_RECHECK_S,
    ) -> None:
        self.name, self.partner, self.wait_s, self.recheck_s = name, partner, wait_s, recheck_s
        self._limiter = limiter_for(name, partner)
        self._idle: list[tuple[SftpSession, float]] = []  # (session, returned at)
        self._opened: dict[int, float] = {}  # id(session) -> opened at
        self._checked_at = time.monotonic()

    def _take_idle_locked(self, dead: list[SftpSession]) -> SftpSession | None:
        now = time.monotonic()
        while self._idle:
            session, returned = self._idle.pop()
            fresh = now - returned <= IDLE_TIMEOUT_S and now - self._opened.get(id(session), now) <= MAX_AGE_S
            if fresh and session.alive():
                return session
            dead.append(session)
            self._opened.pop(id(session), None)
            self._limiter.used -= 1
        return None

    def _recheck(self, session: SftpSession) -> SftpSession:
        """A reused session, if the server still offers the key it was opened with; else every
        idle session is dropped and a new connection is made — which verifies the key again and
        refuses a changed one before any credential is sent."""
        if time.monotonic() - self._checked_at < self.recheck_s:
            return session
        failed: str | None = None  # the probe's unexpected error
        try:
            offered: str | None = offered_host_key(self.partner, session.host_key_type)
        except IncompatiblePeer:
            offered = None  # no key of that type any more: the key changed
        except (OSError, EOFError, paramiko.SSHException) as exc:  # unreachable: the session decides
            log.warning("host key probe failed; using the pooled session", partner=self.name, error=str(exc))
            return session
        except Exception as exc:  # noqa: BLE001 - a key not proven unchanged is never reused
            offered, failed = None, repr(exc)
        self._checked_at = time.monotonic()
        if offered == session.host_key_base64:
            return session
        if failed is not None:
            log.warning("host key probe failed; reconnecting to verify the key", partner=self.name, error=failed)
        else:
            log.warning("the server's host key changed under a pooled session; reconnecting", partner=self.name)
        session.close()
        self._forget_one()
        self.close()
        return self._reopen()

    def _reopen(self) -> SftpSession:
        with self._limiter.cond:
            self._limiter.used += 1
        return self._open()

    def _open(self) -> SftpSession:
        try:
            session = open_session(self.name, self.partner)
        except BaseException:
            self._forget_one()
            raise
        self._opened[id(session)] = time.monotonic()
        return session

    def _forget_one(self) -> None:
        with self._limiter.cond:
            self._limiter.used = max(0, self._limiter.used - 1)
            self._limiter.cond.notify_all()

    def _get(self, wait_s: float | None) -> SftpSession | None:
        """An idle session, or a new one if the limit allows; waits up to ``wait_s`` (None: no wait)."""
        deadline = time.monotonic() + (wait_s or 0.0)
        dead: list[SftpSession] = []
        limiter = self._limiter
        try:
            with limiter.cond:
                while True:
                    session = self._take_idle_locked(dead)
                    if session is not None:
                        break
                    if limiter.used < limiter.limit:
                        limiter.used += 1
                        break
                    remaining = deadline - time.monotonic()
                    if wait_s is None or remaining <= 0:
                        return None
                    limiter.cond.wait(remaining)
        finally:
            for stale in dead:
                stale.close()
        if session is not None:
            return self._recheck(session)
        return self._open()

    def acquire(self) -> SftpSession:
        """An exclusive session; waits for a free one up to ``wait_s`` (then TransientError)."""
        session = self._get(self.wait_s)
        if session is None:
            raise TransientError(
                f"sftp:{self.name}: all {self.partner.max_sessions} sessions (max_sessions) busy for {self.wait_s:.0f}s"
            )
        return session

    def acquire_extra(self, count: int) -> list[SftpSession]:
        """Up to ``count`` more sessions without waiting (for ``connections_per_file``)."""
        extra: list[SftpSession] = []
        while len(extra) < count:
            try:
                session = self._get(None)
            except Exception:  # noqa: BLE001 - extra connections are an optimisation only
                break
            if session is None:
                break
            extra.append(session)
        return extra

    def release(self, session: SftpSession, healthy: bool = True) -> None:
        """Return a session; an unhealthy (or dead) one is closed instead of reused."""
        if healthy and session.alive():
            with self._limiter.cond:
                self._idle.append((session, time.monotonic()))
                self._limiter.cond.notify_all()
            return
        session.close()
        self._opened.pop(id(session), None)
        self._forget_one()

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
        with self._limiter.cond:
            idle, self._idle = self._idle, []
            self._limiter.used = max(0, self._limiter.used - len(idle))
            self._limiter.cond.notify_all()
        for session, _ in idle:
            self._opened.pop(id(session), None)
            session.close()


@per_process
def pool_for(name: str, partner: SftpPartner) -> SessionPool:
    """The process's session pool of a partner: warm instances reuse SSH connections."""
    return SessionPool(name, partner)
