"""Other Python SSH libraries' SFTP uploads, for bench/sftp_bench.py's case (a) (local file → sshd).

offsite's SFTP path runs on paramiko, whose per-packet Python is what separates it from OpenSSH's
C client on the same cipher (docs/performance.md, "What limits each figure"). These children
answer whether another library would lift that ceiling: the same file, sshd and cipher
(``aes128-gcm@openssh.com``), each library at its best settings for OpenSSH:

- **asyncssh** (already a dependency: the stack's second SFTP server): ``SFTPClient.put`` with
  255 KiB requests (OpenSSH's limit is 256 KiB, less the header) and 64 in flight, as OpenSSH's
  own ``sftp`` does since 8.6;
- **ssh2-python** (libssh2 in C, bundled in its wheel): one ``SFTPHandle.write`` per 1 MiB, which
  libssh2 splits into pipelined WRITEs itself. Not a dependency of offsite: it is installed into
  a throw-away venv (tests/infra/venvs.py) only to be measured.

They are reported in the sftp rows' notes, not as the peer: the peer stays OpenSSH.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from bench.children import BENCH_DIR, mark_start

CIPHER = "aes128-gcm@openssh.com"
ASYNCSSH_BLOCK, ASYNCSSH_REQUESTS = 255 * 1024, 64
SSH2_WRITE = 1024 * 1024
SSH2_REQUIREMENTS = "ssh2-python==1.2.0.post1\npsutil==7.2.2\n"


def asyncssh_transfer(port: int, user: str, key: str, known_hosts: str, local_file: str, remote: str) -> dict[str, Any]:
    """Child: ``asyncssh`` SFTP put of ``local_file``, connection included in the time."""
    import asyncio

    import asyncssh

    async def put() -> None:
        async with (
            asyncssh.connect(
                "127.0.0.1",
                port=port,
                username=user,
                client_keys=[key],
                known_hosts=known_hosts,
                encryption_algs=[CIPHER],
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            await sftp.put(local_file, remote, block_size=ASYNCSSH_BLOCK, max_requests=ASYNCSSH_REQUESTS)

    mark_start()
    started = time.perf_counter()
    asyncio.run(put())
    return {"seconds": time.perf_counter() - started}


def ssh2_transfer(port: int, user: str, key: str, local_file: str, remote: str) -> dict[str, Any]:
    """Child (in the ssh2-python venv): libssh2 SFTP write of ``local_file``, connection included."""
    from ssh2 import session as ssh2_session
    from ssh2 import sftp as ssh2_sftp

    mark_start()
    started = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port))
    session = ssh2_session.Session()
    session.method_pref(ssh2_session.LIBSSH2_METHOD_CRYPT_CS, CIPHER)
    session.method_pref(ssh2_session.LIBSSH2_METHOD_CRYPT_SC, CIPHER)
    session.handshake(sock)
    negotiated = session.methods(ssh2_session.LIBSSH2_METHOD_CRYPT_CS)
    session.userauth_publickey_fromfile(user, key)
    sftp = session.sftp_init()
    flags = ssh2_sftp.LIBSSH2_FXF_CREAT | ssh2_sftp.LIBSSH2_FXF_WRITE | ssh2_sftp.LIBSSH2_FXF_TRUNC
    mode = ssh2_sftp.LIBSSH2_SFTP_S_IRUSR | ssh2_sftp.LIBSSH2_SFTP_S_IWUSR
    with open(local_file, "rb") as source, sftp.open(remote, flags, mode) as handle:
        while block := source.read(SSH2_WRITE):
            view = memoryview(block)
            while view:
                _, written = handle.write(bytes(view))
                view = view[written:]
    session.disconnect()
    return {"seconds": time.perf_counter() - started, "cipher": negotiated}


def ssh2_child(**kwargs: Any) -> list[str]:
    """argv of :func:`ssh2_transfer` under the child protocol, in a venv with ssh2-python (built once)."""
    import json

    from tests.infra.venvs import cached_venv, venv_python

    python = venv_python(cached_venv("bench-ssh2", SSH2_REQUIREMENTS))
    children = str(BENCH_DIR / "children.py")
    return [str(python), children, "--child", "sftp_libraries:ssh2_transfer", json.dumps(kwargs)]
