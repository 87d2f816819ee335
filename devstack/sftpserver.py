"""An asyncssh SFTP server: the stack's fallback where OpenSSH sshd cannot run, and a
deliberately limited partner for compatibility tests.

It offers SFTP only (exec and shell requests are refused, so no ``sha1sum``), key auth only,
and ``posix-rename@openssh.com`` only when asked (``posix_rename=True``): without it the
extension is neither advertised nor accepted, like many commercial SFTP servers.

In-process (a thread with its own event loop)::

    with AsyncSshServer(root_dir, 0, authorized_key=pub_path, host_key=key_path) as server:
        server.port, server.known_hosts_line()

As a process (what ``offsite dev up`` runs when sshd is missing)::

    python -m devstack.sftpserver --root DIR --port N --authorized-key PUB --host-key KEY [--posix-rename]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import threading
from pathlib import Path
from typing import Any, Self

import asyncssh
from asyncssh import stream as _asyncssh_stream
from asyncssh.sftp import SFTPServerHandler

POSIX_RENAME = b"posix-rename@openssh.com"


class _SftpServer(asyncssh.SFTPServer):
    def __init__(self, chan: Any, *, chroot: Path | None, posix_rename: bool) -> None:
        super().__init__(chan, chroot=str(chroot).encode() if chroot else None)
        self.posix_rename_enabled = posix_rename

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if not self.posix_rename_enabled:  # second line of defence; the handler drops it first
            raise asyncssh.SFTPOpUnsupported("posix-rename@openssh.com is not supported by this server")
        super().posix_rename(oldpath, newpath)


def _run_sftp_server(sftp_server: Any, reader: Any, writer: Any, sftp_version: int) -> Any:
    """asyncssh's run_sftp_server, but a server without posix-rename stops advertising it."""

    async def run() -> None:
        server = await sftp_server if inspect.isawaitable(sftp_server) else sftp_server
        handler = SFTPServerHandler(server, reader, writer, sftp_version)
        if not getattr(server, "posix_rename_enabled", True):
            handler._extensions = [e for e in handler._extensions if e[0] != POSIX_RENAME]
            handler._packet_handlers = {k: v for k, v in handler._packet_handlers.items() if k != POSIX_RENAME}
        await handler.run()

    return run()


# Behaviour-preserving for every other asyncssh server: only servers built here carry the flag.
_asyncssh_stream.run_sftp_server = _run_sftp_server


class _SshServer(asyncssh.SSHServer):
    def __init__(self, username: str | None, keys: list[asyncssh.SSHKey]) -> None:
        self._username = username
        self._keys = {k.public_data for k in keys}

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return (self._username is None or username == self._username) and key.public_data in self._keys


def _load_public_keys(authorized_key: str | Path) -> list[asyncssh.SSHKey]:
    text = Path(authorized_key).read_text() if Path(str(authorized_key)).is_file() else str(authorized_key)
    return [asyncssh.import_public_key(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]


class AsyncSshServer:
    """An SFTP-only asyncssh server on 127.0.0.1, run in a background thread.

    ``root_dir``: what clients see as ``/`` (``chroot=True``) or their start directory.
    ``authorized_key``: path to a public key file, or the key text. ``host_key``: path to
    a private key; None generates an Ed25519 key. ``port`` 0 picks a free port.
    """

    def __init__(
        self,
        root_dir: str | Path,
        port: int = 0,
        authorized_key: str | Path = "",
        host_key: str | Path | None = None,
        *,
        posix_rename: bool = False,
        username: str | None = None,
        chroot: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        self.root_dir = Path(root_dir).absolute()
        self.port = port
        self.host = host
        self.username = username
        self.posix_rename = posix_rename
        self.chroot = chroot
        self._client_keys = _load_public_keys(authorized_key)
        self.host_key = (
            asyncssh.read_private_key(str(host_key)) if host_key else asyncssh.generate_private_key("ssh-ed25519")
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: Any = None

    async def serve(self) -> Any:
        """Start listening in the running event loop; returns asyncssh's acceptor."""
        root, chroot, rename = self.root_dir, self.chroot, self.posix_rename
        self._acceptor = await asyncssh.create_server(
            lambda: _SshServer(self.username, self._client_keys),
            self.host,
            self.port,
            server_host_keys=[self.host_key],
            sftp_factory=lambda chan: _SftpServer(chan, chroot=root if chroot else None, posix_rename=rename),
            allow_scp=False,
            process_factory=None,  # no exec, no shell
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]
        return self._acceptor

    def known_hosts_line(self) -> str:
        key = self.host_key.export_public_key("openssh").decode().split()
        return f"[{self.host}]:{self.port} {key[0]} {key[1]}"

    def start(self) -> AsyncSshServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.serve())
            except BaseException as exc:  # noqa: BLE001 - re-raised by start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"asyncssh-sftp-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, acceptor = self._loop, self._acceptor
        if loop is None or acceptor is None:
            return

        async def shutdown() -> None:
            acceptor.close()
            await acceptor.wait_closed()
            # Sessions still open are cancelled and awaited, so none is destroyed pending.
            sessions = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread:
            self._thread.join(10)
        self._loop = self._acceptor = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SFTP-only asyncssh server (no exec, key auth)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True, help="directory served")
    parser.add_argument("--authorized-key", required=True, help="public key file allowed to log in")
    parser.add_argument("--host-key", required=True, help="private host key file")
    parser.add_argument("--username", default=None, help="only this login name (default: any)")
    parser.add_argument("--posix-rename", action="store_true", help="offer posix-rename@openssh.com")
    parser.add_argument("--no-chroot", action="store_true", help="serve the real file system, starting in --root")
    args = parser.parse_args(argv)
    if args.no_chroot:
        os.chdir(args.root)  # relative paths start in the data directory, like internal-sftp -d
    server = AsyncSshServer(
        args.root,
        args.port,
        args.authorized_key,
        args.host_key,
        posix_rename=args.posix_rename,
        username=args.username,
        chroot=not args.no_chroot,
        host=args.host,
    )

    async def run() -> None:
        await server.serve()
        print(f"asyncssh SFTP server on {args.host}:{server.port}, root {args.root}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
