"""A private OpenSSH sshd for the SFTP partner ``local``: keys, login user, config, known_hosts.

Everything lives under ``<root>/sftp/``: the host key, the user key (the partner's
``private_key``), ``authorized_keys``, ``known_hosts`` (the ``[127.0.0.1]:PORT`` pin) and
``data/`` (the delivery directory). Keys are generated once and reused by later ``up``s.

Login user: as root, a dedicated account ``offsite-sftp`` (created with ``useradd -m``,
password field ``*`` because a locked account refuses key auth) that owns ``data/``; when
that account cannot reach ``<root>`` (a parent directory without o+x, e.g. /root) or when not
root, sshd serves the user it runs as. Confinement is ``ForceCommand internal-sftp -d DATA``:
no shell, no exec. ChrootDirectory is not used: it needs every path component root-owned and
not writable by others, which a stack under /tmp or a checkout is not.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devstack.errors import StackError

SFTP_USER = "offsite-sftp"
PRIVSEP_DIR = Path("/run/sshd")
ACCOUNT_LOCK = "/run/offsite-sftp-account.lock"  # root-only directory: no /tmp symlink games


class _Under:
    """A file of :class:`SftpFiles`: ``name`` under its ``dir``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, files: SftpFiles, owner: type | None = None) -> Path:
        return files.dir / self.name


@dataclass(frozen=True)
class SftpFiles:
    """The local sshd's files, all under ``dir``."""

    dir: Path
    host_key = _Under("ssh_host_ed25519_key")
    user_key = _Under("id_ed25519")
    authorized_keys = _Under("authorized_keys")
    known_hosts = _Under("known_hosts")
    config = _Under("sshd_config")
    pid_file = _Under("sshd.pid")
    data = _Under("data")


def generate_key(path: Path, comment: str) -> None:
    """An Ed25519 key pair in OpenSSH format: ``path`` (0600) and ``path.pub``; kept if present."""
    if path.is_file() and path.with_suffix(".pub").is_file():
        return
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    path.with_suffix(".pub").write_text(f"{public.decode()} {comment}\n")


def public_key(path: Path) -> str:
    """``ssh-ed25519 AAAA…`` (type and key, without the comment)."""
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def prepare_files(sftp_dir: Path, port: int) -> SftpFiles:
    """Keys, authorized_keys, known_hosts for ``port`` and the data directory."""
    files = SftpFiles(sftp_dir)
    sftp_dir.mkdir(parents=True, exist_ok=True)
    files.data.mkdir(exist_ok=True)
    generate_key(files.host_key, "offsite-local-host")
    generate_key(files.user_key, "offsite-local-user")
    files.authorized_keys.write_text(public_key(files.user_key) + "\n")
    files.known_hosts.write_text(f"[127.0.0.1]:{port} {public_key(files.host_key)}\n")
    return files


def _traversable_by(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on the way to ``path`` that the account cannot enter, or None."""
    for directory in [*reversed(path.parents), path]:
        st = directory.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return directory
    return None


def _shadow_password(user: str) -> str | None:
    try:
        for line in Path("/etc/shadow").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return fields[1]
    except OSError:
        pass
    return None


def add_user(name: str, useradd_args: list[str]) -> str | None:
    """``useradd [args] name`` unless the user exists; None when it exists now, else useradd's error.
    Callers hold a file lock around it (and around what they change on the account)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        done = subprocess.run(["useradd", *useradd_args, name], capture_output=True, text=True, check=False)
        if done.returncode not in (0, 9):  # 9: exists already (another process won the race)
            return done.stderr.strip()
    return None


def _ensure_account() -> pwd.struct_passwd:
    """The dedicated SFTP account, created once; serialised across parallel `up`s (xdist)."""
    with open(ACCOUNT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        failed = add_user(SFTP_USER, ["-m", "-s", "/usr/sbin/nologin", "-p", "*"])
        if failed is not None:
            raise StackError(f"sftp: useradd {SFTP_USER} failed: {failed}", "run as root or use --sftp asyncssh")
        # A locked password ('!') makes sshd refuse even key auth; '*' means "no password login".
        if _shadow_password(SFTP_USER) != "*":
            subprocess.run(["usermod", "-p", "*", SFTP_USER], capture_output=True, check=False)
    return pwd.getpwnam(SFTP_USER)


def choose_user(files: SftpFiles) -> tuple[str, str]:
    """(login user, note). As root: the dedicated account when it can reach the files."""
    me = getpass.getuser()
    if os.geteuid() != 0:
        return me, f"non-root: sshd serves {me}"
    account = _ensure_account()
    for directory in (files.dir.parent, files.dir):
        directory.chmod(directory.stat().st_mode | stat.S_IXOTH)  # our own directories: let the account through
    blocked = _traversable_by(files.data, account.pw_uid, account.pw_gid)
    if blocked is not None:
        return me, f"{SFTP_USER} cannot enter {blocked} (no o+x); serving {me} instead"
    os.chown(files.data, account.pw_uid, account.pw_gid)
    files.authorized_keys.chmod(0o644)
    return SFTP_USER, ""


def write_config(files: SftpFiles, port: int, user: str) -> None:
    lines = [
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {files.host_key}",
        f"PidFile {files.pid_file}",
        f"AuthorizedKeysFile {files.authorized_keys}",
        f"AllowUsers {user}",
        f"PermitRootLogin {'prohibit-password' if user == 'root' else 'no'}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",  # files under /tmp or a checkout; sshd's ownership checks would refuse them
        "AllowTcpForwarding no",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitTTY no",
        "PrintMotd no",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
        f"ForceCommand internal-sftp -d {files.data}",
    ]
    files.config.write_text("\n".join(lines) + "\n")


def check_runnable(sshd: Path, files: SftpFiles) -> str:
    """'' when sshd can run here, else why not (the caller falls back to asyncssh)."""
    if not PRIVSEP_DIR.is_dir():
        if os.geteuid() != 0:
            return f"sshd needs {PRIVSEP_DIR}, which only root can create"
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    done = subprocess.run([str(sshd), "-t", "-f", str(files.config)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"sshd -t rejected {files.config}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    return ""


def argv(sshd: Path, files: SftpFiles) -> list[str]:
    # -D: stay in the foreground (we keep its pid); -e: log to stderr (our log file).
    return [str(sshd), "-D", "-e", "-f", str(files.config)]
