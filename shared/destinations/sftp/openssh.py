"""SFTP through OpenSSH's ``ssh`` binary: its C code does the SSH work, offsite speaks SFTP.

paramiko encrypts, pads and frames every 32 KiB SSH packet in Python; for bulk uploads that is
most of offsite's CPU (docs/performance.md, "SFTP"). OpenSSH's own ``sftp`` runs ``ssh -s sftp``
and talks SFTP over a socket pair; this does the same, with paramiko's SFTP client (its
pipelining and offsite's extensions unchanged) on our end of the pair. rclone offers the same
choice (``--sftp-ssh``).

Trust is decided as on the paramiko path, before any credential is sent: the host key is
verified by :func:`shared.destinations.sftp.connect.verified_host_key`, and ``ssh`` is then
told to accept exactly that key (``StrictHostKeyChecking=yes`` against a one-line
known_hosts) and nothing from the user's or system's configuration (``-F /dev/null``). The
private key is written to a private temp file only until ``ssh`` has logged in.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import paramiko
from paramiko.sftp import SFTPError

from shared.config import SftpPartner
from shared.destinations.sftp.connect import (
    FAST_CIPHERS,
    IO_TIMEOUT_S,
    PartnerSFTPClient,
    SftpSession,
    sftp_errors,
    verified_host_key,
)
from shared.destinations.sftp.hostkeys import known_hosts_line
from shared.destinations.sftp.keys import load_private_key, private_key_bytes
from shared.errors import ConfigError, PermanentError, TransientError
from shared.per_process import per_process

SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # room for 16 WRITE requests of 255 KiB between us and ssh
KEEPALIVE_S = 15  # ssh probes a silent server this often; 4 missed probes end the session
WORKDIR_PREFIX = "offsite-ssh-"  # + pid + "-" + random, under the temp folder
# ssh first binds the mux socket as "<ControlPath>." + 16 random characters; a unix socket's path
# holds at most 107 bytes on Linux and 103 on macOS.
SOCKET_PATH_MAX = 103
MUX_BIND_SUFFIX = 17
MUX_SOCKET = "mux"  # the ControlPath's name in the session folder
_open_workdirs: set[Path] = set()
_CIPHER_LINE = re.compile(r"kex: client->server cipher: (\S+)")


@per_process
def ssh_binary() -> str | None:
    """``ssh`` on PATH if it runs here (``ssh -G`` needs a user entry and a readable binary)."""
    path = shutil.which("ssh")
    if path is None:
        return None
    probe = subprocess.run([path, "-F", "/dev/null", "-G", "localhost"], capture_output=True, timeout=10, check=False)
    return path if probe.returncode == 0 else None


def _new_workdir() -> Path:
    """A private folder (0700) for one session's known_hosts, key, mux socket and log, named
    after this process so that a later process can tell an orphan from a live one."""
    sweep_orphan_workdirs()
    workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-", dir=_workdir_parent()))
    _open_workdirs.add(workdir)
    return workdir


def _workdir_parent() -> str:
    """The temp folder, unless the mux socket's path would be too long under it: then /tmp."""
    parent = tempfile.gettempdir()
    sample = os.path.join(parent, f"{WORKDIR_PREFIX}{os.getpid()}-{'x' * 8}", MUX_SOCKET)  # mkdtemp adds 8
    return parent if len(os.fsencode(sample)) + MUX_BIND_SUFFIX <= SOCKET_PATH_MAX else "/tmp"


def _drop_workdir(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    _open_workdirs.discard(workdir)


@atexit.register
def _drop_open_workdirs() -> None:
    """Sessions never closed (a pool alive at exit): their folders go with the process."""
    for workdir in list(_open_workdirs):
        _drop_workdir(workdir)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@per_process
def sweep_orphan_workdirs() -> int:
    """Once per process: remove the session folders of processes that are gone (killed: neither
    close nor atexit ran), a key with them if one died before logging in. How many. Assumes the
    temp folder is not shared with another PID namespace (true of a function instance's /tmp)."""
    removed = 0
    parents = {Path(tempfile.gettempdir()), Path("/tmp")}  # /tmp: where a too-long temp folder sends them
    for path in (p for parent in parents for p in parent.glob(f"{WORKDIR_PREFIX}*-*")):
        pid = path.name[len(WORKDIR_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


@per_process
def _launcher() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssh-launcher")


def _start_ssh(argv: list[str], end: socket.socket) -> subprocess.Popen[bytes]:
    """``ssh`` on ``end`` (its stdin and stdout), killed when this process ends.

    Without that, a process killed mid-upload leaves its ``ssh`` draining the buffered bytes
    into the partial file for seconds, and the redelivery finds "another writer". Linux sends
    the parent-death signal when the *thread* that started the child ends, so every ``ssh`` is
    started from one thread that lives as long as the process (``setpriv --pdeathsig``, from
    util-linux; without it, ssh still ends, once it has drained).
    """
    setpriv = shutil.which("setpriv")
    prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
    fd = end.fileno()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([*prefix, *argv], stdin=fd, stdout=fd, stderr=subprocess.DEVNULL, close_fds=True)

    return _launcher().submit(start).result()


@per_process
def ssh_ciphers() -> tuple[str, ...]:
    binary = ssh_binary()
    if binary is None:
        return ()
    out = subprocess.run([binary, "-Q", "cipher"], capture_output=True, text=True, timeout=10, check=False)
    return tuple(out.stdout.split())


def uses_openssh(partner: SftpPartner) -> bool:
    """Whether sessions to ``partner`` run through ``ssh`` (switch ``ssh_client``, docs/sftp.md)."""
    if partner.ssh_client != "auto":
        return partner.ssh_client == "openssh"  # open_openssh_session names what is missing
    return partner.private_key is not None and partner.password is None and ssh_binary() is not None


class SshChannel:
    """Our end of the socket pair, shaped as paramiko's SFTP client uses a channel."""

    def __init__(
        self,
        sock: socket.socket,
        process: subprocess.Popen[bytes],
        workdir: Path,
        command_argv: list[str] | None = None,
    ) -> None:
        self.sock, self.process, self.workdir = sock, process, workdir
        self._command_argv = command_argv  # ssh through this connection's mux socket, less the command

    def run_command(self, command: str, timeout_s: float) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, stderr) of ``command`` on the server, over this connection
        (OpenSSH's connection sharing: no second login, no key on disk). 255: ssh's own failure."""
        if self._command_argv is None or not self.alive():
            raise EOFError("no ssh connection to run a command on")
        try:
            done = subprocess.run(
                [*self._command_argv, command],
                stdin=subprocess.DEVNULL,  # EOF at once: an SFTP-only account's forced sftp-server ends
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{command.split()[0]} did not finish within {timeout_s:.0f} s") from None
        return done.returncode, done.stdout, done.stderr

    def send(self, data: bytes) -> int:
        return self.sock.send(data)

    def send_parts(self, parts: list[bytes | memoryview]) -> None:
        """Send ``parts`` back to back with no copy into one buffer (an SFTP WRITE's header and its
        data): ``sendmsg`` gathers them in the kernel. Loops over partial sends (a socket timeout)."""
        views = [memoryview(part).cast("B") for part in parts]
        while views:
            sent = self.sock.sendmsg(views)
            if sent <= 0:
                raise EOFError("ssh closed its end")
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if sent:
                views[0] = views[0][sent:]

    def recv(self, n: int) -> bytes:
        return self.sock.recv(n)

    def recv_ready(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def setblocking(self, blocking: bool) -> None:
        self.sock.setblocking(blocking)

    def get_name(self) -> str:
        return "ssh"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "ssh.log").read_text(errors="replace")
        return ""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()  # ssh sees EOF on its stdin and ends the session
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _drop_workdir(self.workdir)


def _ciphers(name: str, partner: SftpPartner) -> str:
    if not partner.ciphers:
        return "^" + ",".join(FAST_CIPHERS)  # OpenSSH's own list with AES-GCM moved to the front
    unknown = [c for c in partner.ciphers if c not in ssh_ciphers()]
    if unknown:
        raise ConfigError(
            f"destinations.sftp.{name}.ciphers: {list(partner.ciphers)!r} names a cipher OpenSSH's ssh does not "
            f"support ({', '.join(unknown)}); supported: {', '.join(ssh_ciphers())}"
        )
    return ",".join(partner.ciphers)


def _host_key_algorithms(key_type: str) -> str:
    return "rsa-sha2-512,rsa-sha2-256,ssh-rsa" if key_type == "ssh-rsa" else key_type


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _session_options(workdir: Path) -> dict[str, str]:
    """What the connection and every command over its mux socket share: never prompt, no agent,
    only the session's pinned host key, the session's socket."""
    return {
        "BatchMode": "yes",  # never prompt: a refused key is an error, not a question
        "IdentityAgent": "none",
        "UserKnownHostsFile": str(workdir / "known_hosts"),
        "StrictHostKeyChecking": "yes",
        "ControlPath": str(workdir / MUX_SOCKET),
    }


def _argv(binary: str, partner: SftpPartner, workdir: Path, key_type: str, ciphers: str) -> list[str]:
    options = {
        **_session_options(workdir),
        "IdentitiesOnly": "yes",
        "IdentityFile": str(workdir / "id"),
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "GlobalKnownHostsFile": "/dev/null",
        "CheckHostIP": "no",
        "UpdateHostKeys": "no",
        "HostKeyAlgorithms": _host_key_algorithms(key_type),
        "Ciphers": ciphers,
        "ConnectTimeout": str(max(1, round(partner.connect_timeout_s))),
        "ServerAliveInterval": str(KEEPALIVE_S),
        "ServerAliveCountMax": "4",
        "ClearAllForwardings": "yes",
        "ControlMaster": "yes",  # commands (hashing: sha1sum) ride this connection, no second login
        "LogLevel": "DEBUG1",  # the negotiated cipher, and why a login failed; to ssh.log only
    }
    return [*_ssh(binary, partner, options, "-E", str(workdir / "ssh.log")), "-s", "--", partner.host, "sftp"]


def _command_argv(binary: str, partner: SftpPartner, workdir: Path) -> list[str]:
    """ssh as a client of the session's mux socket; ``ControlMaster=no``: never a connection of its own."""
    options = {**_session_options(workdir), "ControlMaster": "no", "IdentityFile": "/dev/null"}
    return [*_ssh(binary, partner, options), "--", partner.host]


def _ssh(binary: str, partner: SftpPartner, options: dict[str, str], *flags: str) -> list[str]:
    """``ssh`` with no configuration but ``options``, no X11/agent forwarding or tty, as the partner's user."""
    argv = [binary, "-F", "/dev/null", "-x", "-a", "-T", *flags]
    for option, value in options.items():
        argv += ["-o", f"{option}={value}"]
    return [*argv, "-p", str(partner.port), "-l", partner.username]


def _refusal(name: str, partner: SftpPartner, log: str, key_type: str) -> Exception:
    """What ``ssh`` ending before SFTP started means, from its own words."""
    where = f"sftp:{name}"
    last = next((line for line in reversed(log.splitlines()) if line and not line.startswith("debug")), "")
    if "Permission denied" in log:
        return PermanentError(
            f"{where}: authentication as {partner.username!r} on {partner.host}:{partner.port} failed "
            f"({key_type} key refused); check destinations.sftp.{name}.private_key"
        )
    if "Host key verification failed" in log or "HOST IDENTIFICATION HAS CHANGED" in log:
        return PermanentError(f"{where}: HOST KEY MISMATCH: the server's key changed while connecting ({last})")
    if "no matching cipher" in log:
        return PermanentError(
            f"{where}: the server accepts none of destinations.sftp.{name}.ciphers ({last}); change ciphers"
        )
    if "subsystem request failed" in log:
        return PermanentError(f"{where}: the server refused the sftp subsystem ({last})")
    return TransientError(f"{where}: ssh ended before SFTP started ({last or 'no message'})")


def _check_usable(name: str, partner: SftpPartner) -> str:
    where = f"destinations.sftp.{name}"
    binary = ssh_binary()
    if binary is None:
        raise ConfigError(f"{where}.ssh_client: 'openssh' needs OpenSSH's ssh on PATH; none runs here")
    if partner.private_key is None:
        raise ConfigError(f"{where}.ssh_client: 'openssh' logs in with private_key only; set it or use 'paramiko'")
    return binary


def open_openssh_session(name: str, partner: SftpPartner) -> SftpSession:
    """Verify the host key, start ``ssh -s sftp`` trusting exactly that key, speak SFTP over it."""
    binary = _check_usable(name, partner)
    assert partner.private_key is not None
    login_key = load_private_key(partner.private_key, partner.private_key_passphrase, f"destinations.sftp.{name}")
    ciphers = _ciphers(name, partner)  # ssh's names, checked before connecting
    key = verified_host_key(name, partner.model_copy(update={"ciphers": ()}))  # paramiko's own list for the probe
    workdir = _new_workdir()
    try:
        (workdir / "known_hosts").write_text(
            known_hosts_line(partner.host, partner.port, key.get_name(), key.get_base64()) + "\n"
        )
        _write_private(workdir / "id", private_key_bytes(partner.private_key, partner.private_key_passphrase, name))
        argv = _argv(binary, partner, workdir, key.get_name(), ciphers)
    except BaseException:
        _drop_workdir(workdir)
        raise
    ours, theirs = socket.socketpair()
    for end in (ours, theirs):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    with theirs:
        process = _start_ssh(argv, theirs)
    channel = SshChannel(ours, process, workdir, _command_argv(binary, partner, workdir))
    try:
        channel.settimeout(partner.connect_timeout_s + 5)
        sftp = PartnerSFTPClient(cast(Any, channel))  # paramiko uses only what SshChannel has
    except (paramiko.SSHException, SFTPError, OSError, EOFError):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)  # its log is complete once it has ended
        refusal = _refusal(name, partner, channel.stderr(), login_key.get_name())
        channel.close()
        raise refusal from None
    try:
        (workdir / "id").unlink()  # logged in: the key is not needed again
        channel.settimeout(IO_TIMEOUT_S)
        found = _CIPHER_LINE.search(channel.stderr())
        with sftp_errors(name, "starting SFTP"):
            return SftpSession.started(name, sftp, key, found.group(1) if found else "", ssh=channel)
    except BaseException:
        channel.close()
        raise
