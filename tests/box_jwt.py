"""A Box JWT app's key pair and its config JSON, as the Box developer console hands them out
(shared by the tests of the local Box API and of the Box destination)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def rsa_key_pair(passphrase: bytes) -> tuple[str, str]:
    """A fresh RSA key: the private key as encrypted PKCS#8 PEM, the public key as PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase)
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def jwt_app_config(
    client_id: str, secret: str, kid: str, private_pem: str, passphrase: str, enterprise_id: str
) -> dict[str, Any]:
    """The JSON config of a JWT app (``boxAppSettings`` and ``enterpriseID``)."""
    return {
        "boxAppSettings": {
            "clientID": client_id,
            "clientSecret": secret,
            "appAuth": {"publicKeyID": kid, "privateKey": private_pem, "passphrase": passphrase},
        },
        "enterpriseID": enterprise_id,
    }
