"""Opening an SFTP session to a partner, and the one place paramiko's exceptions become offsite's.

A session is TCP + SSH with the host key verified *before* any credential is sent (hostkeys.py;
no auto-accept), then password or private-key auth, then the ``sftp`` subsystem with a large
receive window. Ciphers: the partner's ``ciphers`` when set, else paramiko's with AES-GCM first
(by far the fastest here; a server without it negotiates the next). The server's SFTP extensions
come from its VERSION packet; ``limits@openssh.com`` (when offered) sets the write/read size.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import paramiko
import paramiko.sftp_client
import paramiko.ssh_exception
from paramiko.message import Message
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY, CMD_INIT, CMD_STATUS, CMD_VERSION, SFTPError

from shared.config import SftpPartner
from shared.destinations.sftp import padding
from shared.destinations.sftp.hostkeys import (
    ALGORITHMS_FOR_KEY_TYPE,
    describe_key,
    entries_for,
    parse_known_hosts,
    preferred_algorithms,
    verify_host_key,
)
from shared.destinations.sftp.keys import load_private_key
from shared.errors import ConfigError, OffsiteError, PermanentError, TransientError

WINDOW_BYTES = 64 * 1024 * 1024  # how much the server may send before we acknowledge (downloads)
PACKET_BYTES = 32 * 1024  # SSH channel packet we accept; servers rarely send more anyway
IO_TIMEOUT_S = 120.0  # one SFTP request/response; a stalled server becomes a TransientError
SPEC_REQUEST_BYTES = 32 * 1024  # what every SFTP server must accept (draft-ietf-secsh-filexfer)
MAX_REQUEST_BYTES = 256 * 1024  # upper bound even when a server says it takes more
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
SFTP_OP_UNSUPPORTED = 8

# paramiko's request pipelining and a few internals are private (hence paramiko pinned <6) and
# its type stubs leave them out; they are reached through this one typed shim.
int64: type[int] = vars(paramiko.sftp_client)["int64"]  # an int sent as a 64-bit field
IncompatiblePeer: type[Exception] = vars(paramiko.ssh_exception)["IncompatiblePeer"]


class PipelinedSftp(Protocol):
    def _async_request(self, fileobj: Any, t: int, *args: Any) -> int: ...

    def _read_response(self, waitfor: int | None = None) -> tuple[int, Message] | None: ...


class _PacketIo(Protocol):
    def _send_packet(self, t: int, packet: Message) -> None: ...

    def _read_packet(self) -> tuple[int, bytes]: ...


def pipelined(sftp: paramiko.SFTPClient) -> PipelinedSftp:
    """paramiko's asynchronous request API of ``sftp`` (see above)."""
    return cast(PipelinedSftp, sftp)


def supported_host_key_types() -> tuple[str, ...]:
    return tuple(vars(paramiko.Transport)["_preferred_keys"])


class PartnerSFTPClient(paramiko.SFTPClient):
    """paramiko's client, plus the extensions the server announced in its VERSION packet."""

    server_extensions: dict[str, bytes]

    def _send_version(self) -> int:
        init = Message()
        init.add_int(3)
        packets = cast(_PacketIo, self)
        packets._send_packet(CMD_INIT, init)
        kind, data = packets._read_packet()
        if kind != CMD_VERSION:
            raise SFTPError("Incompatible sftp protocol")
        msg = Message(data)
        version = msg.get_int()
        self.server_extensions = {}
        while len(msg.get_remainder()) >= 8:
            name = msg.get_text()
            self.server_extensions[name] = msg.get_binary()
        return version


class _Reply:
    """Receives one response through paramiko's dispatcher (``_expecting`` holds it weakly)."""

    def __init__(self) -> None:
        self.kind: int | None = None
        self.msg: Message | None = None

    def _async_response(self, kind: int, msg: Message, num: int) -> None:
        self.kind, self.msg = kind, msg


def raw_request(sftp: paramiko.SFTPClient, kind: int, *args: Any) -> tuple[int, Message]:
    """Send one request and return (response type, message) without paramiko's status → exception
    mapping, so callers can decide on the SFTP status *code* (e.g. OP_UNSUPPORTED)."""
    reply = _Reply()
    pipelined(sftp)._async_request(reply, kind, *args)
    while reply.kind is None:
        pipelined(sftp)._read_response()
    assert reply.msg is not None
    return reply.kind, reply.msg


def status_of(kind: int, msg: Message) -> tuple[int, str]:
    if kind != CMD_STATUS:
        raise SFTPError(f"expected a status response, got packet type {kind}")
    code = msg.get_int()
    return code, msg.get_text() if len(msg.get_remainder()) >= 4 else ""


class SshProcess(Protocol):
    """An SSH connection run by another program (:mod:`shared.destinations.sftp.openssh`)."""

    def alive(self) -> bool: ...

    def send_parts(self, parts: list[bytes | memoryview]) -> None: ...

    def run_command(self, command: str, timeout_s: float) -> tuple[int, bytes, bytes]: ...

    def close(self) -> None: ...


@dataclass
class SftpSession:
    """One authenticated SSH connection with its SFTP channel. Not for concurrent use.

    The SSH side is paramiko's ``transport`` or an ``ssh`` process (exactly one is set); either
    runs commands (``hashing: sha1sum``): an exec channel, or a command sharing ssh's connection.
    """

    partner: str
    sftp: PartnerSFTPClient
    host_key: str  # "ssh-ed25519 SHA256:…", safe to show
    host_key_type: str
    host_key_base64: str
    transport: paramiko.Transport | None = None
    ssh: SshProcess | None = None
    max_write: int = SPEC_REQUEST_BYTES
    max_read: int = SPEC_REQUEST_BYTES
    cipher: str = ""
    extensions: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def started(
        cls,
        name: str,
        sftp: PartnerSFTPClient,
        key: paramiko.PKey,
        cipher: str,
        *,
        transport: paramiko.Transport | None = None,
        ssh: SshProcess | None = None,
    ) -> SftpSession:
        """The session once SFTP has started: the server's size limits asked, its host key described."""
        max_write, max_read = limits(sftp)
        return cls(
            partner=name,
            sftp=sftp,
            host_key=describe_key(key.get_name(), key.asbytes()),
            host_key_type=key.get_name(),
            host_key_base64=key.get_base64(),
            transport=transport,
            ssh=ssh,
            max_write=max_write,
            max_read=max_read,
            cipher=cipher,
            extensions=dict(sftp.server_extensions),
        )

    @property
    def client(self) -> str:
        return "paramiko" if self.transport is not None else "openssh"

    def alive(self) -> bool:
        if self.transport is not None:
            return self.transport.is_active()
        return self.ssh is not None and self.ssh.alive()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sftp.close()
        for link in (self.transport, self.ssh):
            if link is not None:
                with contextlib.suppress(Exception):
                    link.close()


@contextlib.contextmanager
def sftp_errors(partner: str, what: str, path: str | None = None) -> Iterator[None]:
    """Map paramiko/socket exceptions raised inside the block to offsite's kinds.

    Connection trouble (refused, reset, EOF, timeouts, SSH protocol errors) is transient;
    permission denied is permanent and names ``path``.
    """
    where = f"sftp:{partner}: {what}"
    try:
        yield
    except OffsiteError:
        raise
    except paramiko.AuthenticationException as exc:
        raise PermanentError(f"{where}: authentication failed ({exc.__class__.__name__})") from None
    except TimeoutError as exc:
        raise TransientError(f"{where}: timed out ({exc})") from exc
    except (EOFError, paramiko.SSHException, ConnectionError) as exc:
        raise TransientError(f"{where}: connection lost ({exc.__class__.__name__}: {exc})") from exc
    except OSError as exc:
        target = f" {path}" if path else ""
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise PermanentError(f"{where}: permission denied on{target or ' the remote path'}") from None
        if exc.errno == errno.ENOENT:
            raise PermanentError(f"{where}:{target}: no such file or directory") from None
        raise TransientError(f"{where}{':' + target if target else ''}: {exc.strerror or exc}") from exc


def _configure(transport: paramiko.Transport, where: str, partner: SftpPartner, key_types: tuple[str, ...]) -> None:
    opts = transport.get_security_options()
    if partner.ciphers:
        try:
            opts.ciphers = tuple(partner.ciphers)
        except ValueError:
            raise ConfigError(
                f"{where}.ciphers: {list(partner.ciphers)!r} names a cipher paramiko does not support; "
                f"supported: {', '.join(vars(paramiko.Transport)['_cipher_info'])}"
            ) from None
    else:
        opts.ciphers = FAST_CIPHERS + tuple(c for c in opts.ciphers if c not in FAST_CIPHERS)
    if key_types:
        opts.key_types = key_types


def _authenticate(transport: paramiko.Transport, name: str, partner: SftpPartner) -> None:
    where = f"destinations.sftp.{name}"
    refused: list[str] = []
    if partner.private_key is not None:
        key = load_private_key(partner.private_key, partner.private_key_passphrase, where)
        try:
            transport.auth_publickey(partner.username, key)
            return
        except paramiko.AuthenticationException:
            refused.append(f"{key.get_name()} key")
    if partner.password is not None:
        try:
            transport.auth_password(partner.username, partner.password.reveal())
            return
        except paramiko.AuthenticationException:
            refused.append("password")
    raise PermanentError(
        f"sftp:{name}: authentication as {partner.username!r} on {partner.host}:{partner.port} failed "
        f"({' and '.join(refused) or 'no credentials'} refused); check {where}.password / private_key"
    )


def limits(sftp: PartnerSFTPClient) -> tuple[int, int]:
    if "limits@openssh.com" not in sftp.server_extensions:
        return SPEC_REQUEST_BYTES, SPEC_REQUEST_BYTES
    kind, msg = raw_request(sftp, CMD_EXTENDED, "limits@openssh.com")
    if kind != CMD_EXTENDED_REPLY:
        return SPEC_REQUEST_BYTES, SPEC_REQUEST_BYTES
    _packet, read, write = msg.get_int64(), msg.get_int64(), msg.get_int64()
    return _clamp(write), _clamp(read)


def _clamp(size: int) -> int:
    return max(SPEC_REQUEST_BYTES, min(size or SPEC_REQUEST_BYTES, MAX_REQUEST_BYTES))


def _handshake(name: str, partner: SftpPartner, key_types: tuple[str, ...]) -> tuple[paramiko.Transport, paramiko.PKey]:
    sock = socket.create_connection((partner.host, partner.port), timeout=partner.connect_timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock, default_window_size=WINDOW_BYTES, default_max_packet_size=PACKET_BYTES)
    try:
        _configure(transport, f"destinations.sftp.{name}", partner, key_types)
        transport.start_client(timeout=partner.connect_timeout_s)
        return transport, transport.get_remote_server_key()
    except BaseException:
        transport.close()
        raise


def _verified_transport(name: str, partner: SftpPartner) -> tuple[paramiko.Transport, paramiko.PKey]:
    """Handshake until the server presents a key we trust, trying each host key algorithm once
    when only a fingerprint is pinned (a server may hold several keys; the pin names one). A
    server with no key of the types known_hosts lists is a mismatch showing the key it offers."""
    supported = supported_host_key_types()
    known = partner.known_hosts.reveal() if partner.known_hosts is not None else None
    key_types: tuple[str, ...] = ()
    if known is not None:
        entries = entries_for(
            parse_known_hosts(known, f"destinations.sftp.{name}.known_hosts"), partner.host, partner.port
        )
        key_types = preferred_algorithms(entries, supported)
    first_error: PermanentError | None = None
    remaining = list(key_types or supported)
    while remaining:
        try:
            transport, key = _handshake(name, partner, tuple(remaining))
        except IncompatiblePeer:
            if first_error is not None:
                raise first_error from None  # no other host key to try: the pin matches none
            if remaining == list(supported):
                raise
            remaining = list(supported)  # no key of a type known_hosts lists: get one to show as a mismatch
            continue
        try:
            verify_host_key(
                partner=name,
                host=partner.host,
                port=partner.port,
                key_type=key.get_name(),
                key_base64=key.get_base64(),
                known_hosts=known,
                fingerprint=partner.host_key_fingerprint,
            )
            return transport, key
        except PermanentError as exc:
            transport.close()
            first_error = first_error or exc
            if partner.host_key_fingerprint is None or known is not None:
                raise
            offered = key.get_name()
            remaining = [
                a for a in remaining if a != offered and not (offered == "ssh-rsa" and a.startswith("rsa-sha2"))
            ]
    assert first_error is not None
    raise first_error


def verified_host_key(name: str, partner: SftpPartner) -> paramiko.PKey:
    """The key the partner's server offers, verified as for a login (a handshake, no credentials)."""
    with sftp_errors(name, f"connecting to {partner.host}:{partner.port}"):
        transport, key = _verified_transport(name, partner)
        transport.close()
        return key


def open_paramiko_session(name: str, partner: SftpPartner) -> SftpSession:
    """Connect, verify the host key, authenticate and start SFTP. Errors as :func:`sftp_errors`."""
    padding.install()
    with sftp_errors(name, f"connecting to {partner.host}:{partner.port}"):
        transport, key = _verified_transport(name, partner)
        try:
            _authenticate(transport, name, partner)
            sftp = PartnerSFTPClient.from_transport(transport, window_size=WINDOW_BYTES, max_packet_size=PACKET_BYTES)
            if sftp is None:
                raise TransientError(f"sftp:{name}: the server refused to open an SFTP channel")
            channel = sftp.get_channel()
            if channel is None:
                raise TransientError(f"sftp:{name}: the SFTP channel closed while starting")
            channel.settimeout(IO_TIMEOUT_S)
            cipher = str(vars(transport).get("remote_cipher", ""))
            return SftpSession.started(name, sftp, key, cipher, transport=transport)
        except BaseException:
            transport.close()
            raise


def offered_host_key(partner: SftpPartner, key_type: str) -> str:
    """The base64 ``key_type`` key the partner's server offers now (a handshake, no login).

    A warm pool asks this before reusing a session: a server whose key changed since the
    session was opened is found out at the next delivery, not at the next reconnect.
    """
    wanted = ALGORITHMS_FOR_KEY_TYPE.get(key_type, (key_type,))  # an ssh-rsa key signs as rsa-sha2-*
    sock = socket.create_connection((partner.host, partner.port), timeout=partner.connect_timeout_s)
    transport = paramiko.Transport(sock)
    try:
        transport.get_security_options().key_types = wanted
        transport.start_client(timeout=partner.connect_timeout_s)
        return str(transport.get_remote_server_key().get_base64())
    finally:
        transport.close()


def scan_host_key(host: str, port: int, timeout_s: float = 15.0) -> tuple[str, str]:
    """The key a server offers (like ``ssh-keyscan``), without authenticating: (type, base64).

    For operators pinning a new partner; the fingerprint must still be confirmed out of band.
    """
    with sftp_errors("scan", f"connecting to {host}:{port}"):
        sock = socket.create_connection((host, port), timeout=timeout_s)
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=timeout_s)
            key = transport.get_remote_server_key()
            return key.get_name(), key.get_base64()
        finally:
            transport.close()
