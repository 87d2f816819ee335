"""A private OpenSSH sshd on 127.0.0.1 for tests and the benchmark (LOCAL-STACK-NOTES.md, "OpenSSH sshd").

Runs as root (tests do) and serves one dedicated, non-root user, so directory permissions
are real. The user is created once per machine with ``useradd`` under a file lock
(idempotent, xdist-safe); every test gets its own directory under the user's base folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from devstack.ports import free_port, wait_tcp
from devstack.sshd import add_user

SSHD = "/usr/sbin/sshd"
USER = "offsite-sftptest"  # not the stack's offsite-sftp: this one has a password and a shell
PASSWORD = "offsite-sftp-test-password"
BASE = Path("/srv/offsite-sftp-test")
_LOCK = Path("/tmp/offsite-sftp-useradd.lock")


@dataclass(frozen=True)
class SftpUser:
    name: str
    uid: int
    gid: int
    password: str
    base: Path  # owned by the user; per-test directories go under it


def ensure_user(name: str = USER, password: str = PASSWORD) -> SftpUser:
    """Create the login user (once per machine) and its base folder; safe to call concurrently."""
    with open(_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        failed = add_user(name, ["--create-home", "--shell", "/bin/sh"])
        if failed is not None:
            raise RuntimeError(f"useradd {name} failed: {failed}")
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, capture_output=True)
        entry = pwd.getpwnam(name)
        BASE.mkdir(parents=True, exist_ok=True)
        os.chown(BASE, entry.pw_uid, entry.pw_gid)
        BASE.chmod(0o755)
    return SftpUser(name, entry.pw_uid, entry.pw_gid, password, BASE)


def user_dir(user: SftpUser, label: str = "t") -> Path:
    """A fresh directory owned by the user: ``/srv/offsite-sftp-test/<label>-<uuid>``."""
    path = user.base / f"{label}-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    os.chown(path, user.uid, user.gid)
    return path


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "", bits: int | None = None) -> Path:
    """An OpenSSH key pair at ``path`` / ``path.pub``."""
    cmd = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", f"offsite-test-{kind}", "-f", str(path)]
    if bits:
        cmd += ["-b", str(bits)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def fingerprint(pub_path: Path) -> str:
    """``SHA256:…`` of a public key file, as ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub_path)], check=True, capture_output=True, text=True
    )
    return out.stdout.split()[1]


@dataclass
class Sshd:
    """One sshd process: ``start()``, ``stop()``, ``restart()``; ``known_hosts`` line for its key."""

    user: SftpUser
    force_internal_sftp: bool = True
    host_key_type: str = "ed25519"
    extra_config: str = ""
    port: int = field(default_factory=free_port)
    state: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="offsite-sshd-")))
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.state.chmod(0o755)  # the user must read authorized_keys
        self.host_key = keygen(self.state / f"host_{self.host_key_type}", self.host_key_type)
        self.client_key = keygen(self.state / "client_ed25519")
        self.authorized_keys = self.state / "authorized_keys"
        self.authorize(self.client_key.with_suffix(".pub"))
        self.config = self.state / "sshd_config"

    def authorize(self, pub_path: Path) -> None:
        with self.authorized_keys.open("a") as out:
            out.write(pub_path.read_text())
        self.authorized_keys.chmod(0o644)

    @property
    def host_public_key(self) -> str:
        return self.host_key.with_suffix(".pub").read_text().strip()

    @property
    def known_hosts(self) -> str:
        kind, blob = self.host_public_key.split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    @property
    def host_fingerprint(self) -> str:
        return fingerprint(self.host_key.with_suffix(".pub"))

    def write_config(self) -> None:
        lines = [
            "ListenAddress 127.0.0.1",
            f"Port {self.port}",
            f"HostKey {self.host_key}",
            f"PidFile {self.state / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "UsePAM no",
            "StrictModes no",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin no",
            f"AllowUsers {self.user.name}",
            "MaxStartups 200",
            "MaxSessions 50",
            "MaxAuthTries 10",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
        ]
        if self.force_internal_sftp:
            lines.append("ForceCommand internal-sftp")
        self.config.write_text("\n".join(lines) + "\n" + self.extra_config)

    def start(self) -> Sshd:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.write_config()
        checked = subprocess.run([SSHD, "-t", "-f", str(self.config)], check=False, capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"sshd config invalid: {checked.stderr.strip()}")
        log = (self.state / "sshd.log").open("ab")
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log)
        proc = self.process
        wait_tcp(self.port, 15, is_alive=lambda: proc.poll() is None)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        path = self.state / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)
