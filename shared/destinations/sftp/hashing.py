"""SHA-1 of files on a partner's server, where the partner offers a way (switch ``hashing``).

- ``check-file``: the SFTP extension of draft-ietf-secsh-filexfer-extensions (``check-file-handle``,
  or paramiko's older ``check-file``): the server reads the file and returns its hash. Offered by
  e.g. ProFTPD mod_sftp and paramiko-based servers; OpenSSH does not have it.
- ``sha1sum``: ``sha1sum -- PATH…`` over an SSH exec channel (paramiko) or as a command sharing
  the ``ssh`` process's connection (``ssh_client: openssh``), for accounts with a shell (not for
  ``ForceCommand internal-sftp`` accounts: those can only speak SFTP).
- ``none``: no server-side hash; :mod:`shared.destinations.sftp.destination` decides without one.

A configured method that the server does not support is a PermanentError telling which switch
to change, never a silent downgrade to a weaker check.
"""

from __future__ import annotations

import re
import shlex
import time

import paramiko
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY, CMD_STATUS

from shared import retry
from shared.destinations.sftp.connect import (
    SFTP_OP_UNSUPPORTED,
    SftpSession,
    int64,
    raw_request,
    sftp_errors,
    status_of,
)
from shared.errors import PermanentError, TransientError

HASH_METHODS = ("none", "check-file", "sha1sum")
_BASE_TIMEOUT_S = 60.0
_MIN_RATE = 20 * 1024 * 1024  # bytes/s a server hashes at least; sets the exec timeout
_MAX_COMMAND = 16 * 1024  # bytes of one sha1sum command line
_SHA1SUM_LINE = re.compile(r"^\\?([0-9a-f]{40}) [ *]")
_CHECK_FILE_NAMES = ("check-file-handle", "check-file")
_SSH_FAILED = 255  # ssh's exit status for its own errors


def remote_sha1(session: SftpSession, method: str, paths: list[str], total_bytes: int = 0) -> dict[str, str]:
    """{path: hex SHA-1} for existing files ``paths`` (absolute), computed by the server."""
    if not paths:
        return {}
    if method == "check-file":
        return {p: _check_file(session, p) for p in paths}
    if method == "sha1sum":
        out: dict[str, str] = {}
        for batch in _batches(paths):
            out.update(_sha1sum(session, batch, total_bytes))
        return out
    raise PermanentError(f"sftp:{session.partner}: hashing is {method!r}; the server is not asked for hashes")


def _batches(paths: list[str]) -> list[list[str]]:
    batches: list[list[str]] = [[]]
    length = 0
    for path in paths:
        quoted = len(shlex.quote(path)) + 1
        if batches[-1] and length + quoted > _MAX_COMMAND:
            batches.append([])
            length = 0
        batches[-1].append(path)
        length += quoted
    return batches


def _check_file(session: SftpSession, path: str) -> str:
    partner = session.partner
    with sftp_errors(partner, "hashing (check-file)", path):
        try:
            handle = session.sftp.open(path, "rb")
        except FileNotFoundError:  # removed since it was listed or written: as sha1sum, a retry decides
            raise TransientError(f"sftp:{partner}: {path} is gone; it was there a moment before hashing") from None
        try:
            for name in _CHECK_FILE_NAMES:
                kind, msg = raw_request(session.sftp, CMD_EXTENDED, name, handle.handle, "sha1", int64(0), int64(0), 0)
                if kind == CMD_STATUS:
                    code, text = status_of(kind, msg)
                    if code == SFTP_OP_UNSUPPORTED:
                        continue
                    raise TransientError(f"sftp:{partner}: check-file on {path} failed (SFTP status {code}: {text})")
                if kind != CMD_EXTENDED_REPLY:
                    raise TransientError(f"sftp:{partner}: check-file on {path}: unexpected response type {kind}")
                msg.get_text()  # "check-file"
                algorithm = msg.get_text()
                digest = msg.get_remainder()
                if algorithm != "sha1" or len(digest) != 20:
                    raise PermanentError(
                        f"sftp:{partner}: check-file answered {algorithm!r} ({len(digest)} bytes), not sha1"
                    )
                return digest.hex()
        finally:
            handle.close()
    raise PermanentError(
        f"sftp:{partner}: the server does not support the check-file extension; "
        f"set destinations.sftp.{partner}.hashing to 'sha1sum' (if the account has a shell) or 'none'"
    )


def exec_timeout(total_bytes: int) -> float:
    """How long a sha1sum of ``total_bytes`` may run: what a slow server needs (20 MB/s, plus a
    minute), but never past the invocation's end (:func:`shared.retry.invocation_ends`), where
    the platform would cut the function off with nothing reported."""
    needed = _BASE_TIMEOUT_S + total_bytes / _MIN_RATE
    ends = retry.invocation_ends()
    return needed if ends is None else max(0.0, min(needed, ends - time.monotonic()))


def _sha1sum(session: SftpSession, paths: list[str], total_bytes: int) -> dict[str, str]:
    partner = session.partner
    timeout = exec_timeout(total_bytes)
    out_of_time = TransientError(
        f"sftp:{partner}: sha1sum of {len(paths)} file(s), {total_bytes:,} bytes, did not finish in the "
        f"{timeout:.0f} s left in this invocation; it is retried (a server hashing under 20 MB/s may "
        f"never finish: set destinations.sftp.{partner}.hashing to 'none' to compare sizes only)"
    )
    if timeout < 1.0:
        raise out_of_time
    command = "sha1sum -- " + " ".join(shlex.quote(p) for p in paths)
    try:
        with sftp_errors(partner, "hashing (sha1sum)", paths[0] if len(paths) == 1 else None):
            status, stdout, stderr = _exec(session, command, timeout)
    except TransientError as exc:
        if isinstance(exc.__cause__, TimeoutError):  # socket.timeout, subprocess.TimeoutExpired as mapped
            raise out_of_time from exc
        raise
    lines = _output_lines(stdout)
    detail = (stderr.decode(errors="replace").strip() or " ".join(lines))[:300]
    if not any(_SHA1SUM_LINE.match(line) for line in lines):
        # e.g. OpenSSH with ForceCommand internal-sftp: "This service allows sftp connections only."
        raise PermanentError(
            f"sftp:{partner}: sha1sum did not run on the server ({detail or 'no output'}); "
            f"set destinations.sftp.{partner}.hashing to 'check-file' or 'none'"
        )
    if status != 0 or len(lines) != len(paths):
        if "Permission denied" in detail:
            raise PermanentError(f"sftp:{partner}: sha1sum: permission denied ({detail})")
        raise TransientError(f"sftp:{partner}: sha1sum exited {status} with {len(lines)}/{len(paths)} hashes: {detail}")
    out: dict[str, str] = {}
    for path, line in zip(paths, lines, strict=True):
        match = _SHA1SUM_LINE.match(line)
        if not match:
            raise PermanentError(f"sftp:{partner}: sha1sum printed {line[:80]!r}; expected '<40 hex digits>  <path>'")
        out[path] = match.group(1)
    return out


def _output_lines(stdout: bytes) -> list[str]:
    """sha1sum's lines: split at newlines only, since it escapes only '\\n', '\\\\' and '\\r' in
    names; str.splitlines() would also split inside a name holding e.g. U+2028 or a form feed."""
    lines = stdout.decode(errors="replace").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _exec(session: SftpSession, command: str, timeout: float) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr) of ``command`` on the server: an exec channel on paramiko's
    transport, or a command over the ``ssh`` process's shared connection."""
    partner = session.partner
    refused = PermanentError(
        f"sftp:{partner}: the server refused to run commands (exec); "
        f"set destinations.sftp.{partner}.hashing to 'check-file' or 'none'"
    )
    if session.ssh is not None:
        status, stdout, stderr = session.ssh.run_command(command, timeout)
        if status == _SSH_FAILED and not stdout:  # no exit status from the command
            text = stderr.decode(errors="replace").strip()[-300:]
            if not session.ssh.alive():
                raise TransientError(f"sftp:{partner}: the SSH connection ended while running sha1sum ({text})")
            if not text or "exec request failed" in text:
                raise refused  # the server closed the command's channel without running it
            raise TransientError(f"sftp:{partner}: ssh could not run the command over its connection ({text})")
        return status, stdout, stderr
    assert session.transport is not None  # a session has exactly one of the two
    channel = session.transport.open_session(timeout=timeout)
    try:
        channel.settimeout(timeout)
        try:
            channel.exec_command(command)
        except paramiko.SSHException:
            raise refused from None
        channel.shutdown_write()  # a ForceCommand internal-sftp account sees EOF and ends at once
        stdout = _read_all(channel.recv)
        stderr = _read_all(channel.recv_stderr)
        return channel.recv_exit_status(), stdout, stderr
    finally:
        channel.close()


def _read_all(recv) -> bytes:  # type: ignore[no-untyped-def]
    parts: list[bytes] = []
    while chunk := recv(65536):
        parts.append(chunk)
    return b"".join(parts)
