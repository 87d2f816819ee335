"""Host key verification for SFTP partners: known_hosts content or a pinned SHA256 fingerprint.

There is no auto-accept anywhere: a server whose key is unknown, changed or revoked is refused
with a :class:`PermanentError` that shows the key it offered (type and ``SHA256:`` fingerprint),
so an operator can compare it with the partner out of band and then pin it.

known_hosts is read as OpenSSH writes it: plain host names and ``[host]:port`` for ports other
than 22, comma-separated patterns with ``*``/``?`` and ``!`` negation, hashed names
(``|1|salt|hash``, ``ssh-keygen -H``) and ``@revoked`` lines. ``@cert-authority`` lines are
ignored (host certificates are not supported).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

from shared.errors import ConfigError, PermanentError

# Which host key algorithms to ask for, per key type found in known_hosts (RSA keys are
# offered with SHA-2 signatures; the key blob still says ssh-rsa).
ALGORITHMS_FOR_KEY_TYPE: dict[str, tuple[str, ...]] = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}


@dataclass(frozen=True)
class KnownHost:
    patterns: str  # as written: "host,[host]:2222,*.example.com" or "|1|salt|hash"
    key_type: str
    key_base64: str
    revoked: bool = False


def host_label(host: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: ``host`` on port 22, ``[host]:port`` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint_of_blob(key_blob: bytes) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint (unpadded base64 of the SHA-256 of the key blob)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


def describe_key(key_type: str, key_blob: bytes) -> str:
    return f"{key_type} {fingerprint_of_blob(key_blob)}"


def parse_known_hosts(text: str, where: str = "known_hosts") -> list[KnownHost]:
    """Entries of known_hosts content; a malformed line is a ConfigError naming its number."""
    entries: list[KnownHost] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        marker = None
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
        if len(fields) < 3:
            raise ConfigError(f"{where}: line {number} is not 'HOSTS KEYTYPE BASE64KEY' (found {len(fields)} fields)")
        patterns, key_type, key_b64 = fields[:3]
        try:
            base64.b64decode(key_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: line {number}: the key is not valid base64") from None
        if marker == "@cert-authority":
            continue
        if marker not in (None, "@revoked"):
            raise ConfigError(
                f"{where}: line {number}: unknown marker {marker!r} (expected @revoked or @cert-authority)"
            )
        entries.append(KnownHost(patterns, key_type, key_b64, revoked=marker == "@revoked"))
    return entries


def _glob(pattern: str) -> re.Pattern[str]:
    """OpenSSH patterns: only ``*`` and ``?`` are special (``[host]:port`` is literal)."""
    return re.compile(re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", "."))


def _matches(patterns: str, name: str) -> bool:
    if patterns.startswith("|1|"):
        try:
            _, _, salt_b64, hash_b64 = patterns.split("|", 3)
            salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        except (ValueError, binascii.Error):
            return False
        return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), expected)
    matched = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        if _glob(pattern.lstrip("!")).fullmatch(name.lower()):
            if negated:
                return False
            matched = True
    return matched


def entries_for(entries: list[KnownHost], host: str, port: int) -> list[KnownHost]:
    name = host_label(host, port)
    return [e for e in entries if _matches(e.patterns, name)]


def preferred_algorithms(entries: list[KnownHost], supported: tuple[str, ...]) -> tuple[str, ...]:
    """Host key algorithms to negotiate so the server presents a key we know (OpenSSH does the same)."""
    wanted: list[str] = []
    for entry in entries:
        if not entry.revoked:
            wanted.extend(ALGORITHMS_FOR_KEY_TYPE.get(entry.key_type, ()))
    ordered = tuple(a for a in supported if a in wanted)
    return ordered


def known_hosts_line(host: str, port: int, key_type: str, key_base64: str) -> str:
    return f"{host_label(host, port)} {key_type} {key_base64}"


def verify_host_key(
    *,
    partner: str,
    host: str,
    port: int,
    key_type: str,
    key_base64: str,
    known_hosts: str | None,
    fingerprint: str | None,
) -> None:
    """Accept the offered key only if known_hosts lists it for this host or it has the pinned fingerprint.

    Raises PermanentError showing the offered key's fingerprint otherwise.
    """
    blob = base64.b64decode(key_base64)
    offered = describe_key(key_type, blob)
    label = host_label(host, port)
    where = f"destinations.sftp.{partner}"
    found: list[KnownHost] = []
    if known_hosts is not None:
        found = entries_for(parse_known_hosts(known_hosts, f"{where}.known_hosts"), host, port)
        if any(e.revoked and e.key_base64 == key_base64 for e in found):
            raise PermanentError(
                f"sftp:{partner}: host key of {label} is REVOKED in known_hosts: server offered {offered}"
            )
        if any(not e.revoked and e.key_base64 == key_base64 for e in found):
            return
        if not [e for e in found if not e.revoked] and fingerprint is None:
            raise PermanentError(
                f"sftp:{partner}: {label} is not in {where}.known_hosts; the server offered {offered}. "
                f"Confirm this fingerprint with the partner, then add: {known_hosts_line(host, port, key_type, key_base64)}"
            )
    if fingerprint is not None and hmac.compare_digest(fingerprint.strip(), fingerprint_of_blob(blob)):
        return
    expected = [describe_key(e.key_type, base64.b64decode(e.key_base64)) for e in found if not e.revoked]
    if fingerprint is not None:
        expected.append(fingerprint)
    raise PermanentError(
        f"sftp:{partner}: HOST KEY MISMATCH for {label}: the server offered {offered}, expected "
        f"{' or '.join(expected)}. The key changed or someone is in between; confirm the new key with the "
        f"partner before updating {where}.known_hosts / host_key_fingerprint"
    )
