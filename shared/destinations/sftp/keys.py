"""A partner's private key: read once (RSA, ECDSA, Ed25519; OpenSSH or PEM; optional passphrase),
as paramiko uses it, or unencrypted in OpenSSH form for ``ssh -i`` (:mod:`.openssh`).

Every way a key cannot be used is a ConfigError naming the field.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from shared.errors import ConfigError
from shared.secrets import Secret


def _parsed(text: str, passphrase: str | None) -> Any:
    """The key as cryptography reads it: OpenSSH form, else PEM (its errors unchanged)."""
    data = text.encode()
    password = passphrase.encode() if passphrase is not None else None
    try:
        return serialization.load_ssh_private_key(data, password=password)
    except ValueError:
        return serialization.load_pem_private_key(data, password=password)


@functools.lru_cache(maxsize=16)
def _load_key(text: str, passphrase: str | None, where: str) -> paramiko.PKey:
    try:
        loaded = _parsed(text, passphrase)
    except TypeError as exc:  # passphrase missing, or given for an unencrypted key
        raise ConfigError(f"{where}.private_key_passphrase: {exc}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{where}.private_key: not a readable RSA, ECDSA or Ed25519 private key in OpenSSH or PEM form "
            "(or private_key_passphrase is wrong)"
        ) from None
    key_class: type[paramiko.PKey]
    if isinstance(loaded, rsa.RSAPrivateKey):
        key_class = paramiko.RSAKey
    elif isinstance(loaded, ed25519.Ed25519PrivateKey):
        key_class = paramiko.Ed25519Key
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        key_class = paramiko.ECDSAKey
    else:
        raise ConfigError(
            f"{where}.private_key: key type {type(loaded).__name__} is not supported (RSA, ECDSA, Ed25519)"
        )
    try:
        return key_class.from_private_key(io.StringIO(text), password=passphrase)
    except paramiko.SSHException as exc:
        raise ConfigError(f"{where}.private_key: {exc}") from None


def load_private_key(key: Secret, passphrase: Secret | None, where: str) -> paramiko.PKey:
    """The partner's private key (RSA, ECDSA, Ed25519; OpenSSH or PEM; optional passphrase)."""
    return _load_key(key.reveal(), passphrase.reveal() if passphrase is not None else None, where)


def private_key_bytes(key: Secret, passphrase: Secret | None, name: str) -> bytes:
    """The partner's private key, unencrypted in OpenSSH form (for ``ssh -i``; checked as above)."""
    where = f"destinations.sftp.{name}"
    load_private_key(key, passphrase, where)  # the same errors for a bad key or passphrase
    loaded = _parsed(key.reveal(), passphrase.reveal() if passphrase is not None else None)
    return bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
