"""A paramiko-based SFTP server on 127.0.0.1: the one local server that answers the ``check-file``
hashing extension (OpenSSH and asyncssh do not), so ``hashing: check-file`` is tested for real.

Serves ``root`` (paths are taken as they come, so tests use absolute paths under it), key auth.
paramiko's own check-file handler hashes whole files correctly only between 256 bytes and 64 KiB
(its block loop skips data beyond that); tests stay in that range.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import paramiko
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface
from paramiko.sftp import SFTP_OK

from devstack.ports import free_port


class _Handle(SFTPHandle):
    def stat(self) -> Any:
        try:
            return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno)

    def chattr(self, attr: Any) -> int:
        return SFTP_OK


class _Files(SFTPServerInterface):
    def __init__(self, server: Any, owner: ParamikoSftpServer) -> None:
        super().__init__(server)
        self.owner = owner

    def list_folder(self, path: str) -> Any:
        try:
            listed = [SFTPAttributes.from_stat(os.lstat(os.path.join(path, n)), n) for n in os.listdir(path)]
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno)
        for picked_up in self.owner.picked_up_after_listing:  # the partner's job takes them right away
            with contextlib.suppress(FileNotFoundError):
                picked_up.unlink()
        return listed

    def stat(self, path: str) -> Any:
        try:
            return SFTPAttributes.from_stat(os.stat(path))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno)

    def lstat(self, path: str) -> Any:
        try:
            return SFTPAttributes.from_stat(os.lstat(path))
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno)

    def open(self, path: str, flags: int, attr: Any) -> Any:
        try:
            fd = os.open(path, flags, 0o644)
            mode = "rb+" if flags & os.O_RDWR else ("wb" if flags & os.O_WRONLY else "rb")
            if flags & os.O_WRONLY and not flags & os.O_TRUNC:
                mode = "r+b"
            handle = _Handle(flags)
            handle.filename = path
            handle.readfile = handle.writefile = os.fdopen(fd, mode)
            return handle
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno)

    def remove(self, path: str) -> int:
        return self._call(os.remove, path)

    def rename(self, old: str, new: str) -> int:
        if os.path.exists(new):
            return paramiko.sftp.SFTP_FAILURE
        return self._call(os.rename, old, new)

    def posix_rename(self, old: str, new: str) -> int:
        return self._call(os.replace, old, new)

    def mkdir(self, path: str, attr: Any) -> int:
        return self._call(os.mkdir, path)

    def rmdir(self, path: str) -> int:
        return self._call(os.rmdir, path)

    def chattr(self, path: str, attr: Any) -> int:
        return SFTP_OK

    @staticmethod
    def _call(fn: Any, *args: str) -> int:
        try:
            fn(*args)
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno)
        return SFTP_OK


class _Auth(paramiko.ServerInterface):
    def __init__(self, allowed: paramiko.PKey) -> None:
        self.allowed = allowed

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = key.asbytes() == self.allowed.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class ParamikoSftpServer:
    def __init__(self, client_public_key: Path) -> None:
        kind, blob = client_public_key.read_text().split()[:2]
        self.allowed = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
        self.host_key = paramiko.Ed25519Key.from_private_key_file(str(_host_key(client_public_key.parent)))
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._transports: list[paramiko.Transport] = []
        self.picked_up_after_listing: list[Path] = []  # files a partner's job removes once a folder is listed
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def known_hosts(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}\n"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(sock)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", SFTPServer, _Files, self)
            self._transports.append(transport)
            # With an event, start_server does not block: a client that leaves mid-handshake (the
            # pool's host-key probe does, once it has the key) must not stop the accept loop, as it
            # did when start_server blocked here and raised.
            transport.start_server(event=threading.Event(), server=_Auth(self.allowed))

    def close(self) -> None:
        self._listener.close()
        for transport in self._transports:
            with contextlib.suppress(Exception):
                transport.close()


def _host_key(folder: Path) -> Path:
    path = folder / "paramiko_host_ed25519"
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path
