"""The local stack's OIDC token issuer: what Google's token service is to the HTTP trigger in the cloud.

It keeps an RSA key and a self-signed certificate under ``<root>/oidc/`` (made once by
:func:`ensure_keys`), serves the certificate the way Google serves its token-signing certs
(``GET /oauth2/v1/certs`` → ``{key id: PEM certificate}``) and signs ID tokens with
google-auth's signer (:func:`mint`; ``offsite dev token``, the tests). The HTTP trigger checks
them with the same code as in the cloud; only ``http.certs_url`` and ``http.issuers`` of the
generated config point here.

    python -m devstack.oidc --host 127.0.0.1 --port N --root ROOT
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.ports import server_arguments

CERTS_PATH = "/oauth2/v1/certs"
KEY_FILE = "signing-key.pem"
CERTS_FILE = "certs.json"
DEFAULT_EMAIL = "developer@offsite.local"


def issuer(port: int) -> str:
    """The ``iss`` of the local tokens (the issuer's own URL, as Google's is accounts.google.com)."""
    return f"http://127.0.0.1:{port}"


def certs_url(port: int) -> str:
    return f"http://127.0.0.1:{port}{CERTS_PATH}"


def ensure_keys(root: Path) -> Path:
    """``<root>/oidc/`` with an RSA signing key (0600) and its certificate under a key id; made once."""
    folder = Path(root) / "oidc"
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / KEY_FILE).is_file() and (folder / CERTS_FILE).is_file():
        return folder
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "offsite local OIDC issuer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_id = cert.fingerprint(hashes.SHA1()).hex()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(folder / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    certs = {key_id: cert.public_bytes(serialization.Encoding.PEM).decode()}
    (folder / CERTS_FILE).write_text(json.dumps(certs))
    return folder


def mint(
    root: Path,
    *,
    audience: str,
    issuer_url: str,
    email: str = DEFAULT_EMAIL,
    lifetime_s: int = 3600,
    now: float | None = None,
) -> str:
    """An ID token shaped like Google's (iss, aud, sub, email, email_verified, iat, exp), signed
    with the stack's key."""
    from google.auth import crypt, jwt

    folder = ensure_keys(root)
    (key_id,) = json.loads((folder / CERTS_FILE).read_text())
    signer = crypt.RSASigner.from_string((folder / KEY_FILE).read_bytes(), key_id=key_id)
    issued = int(now if now is not None else time.time())
    payload: dict[str, Any] = {
        "iss": issuer_url,
        "aud": audience,
        "sub": "local-" + email.split("@", 1)[0],
        "email": email,
        "email_verified": True,
        "iat": issued,
        "exp": issued + lifetime_s,
    }
    return jwt.encode(signer, payload).decode()


class CertsHandler(BaseHTTPRequestHandler):
    certs_file: Path

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, b"ok", "text/plain")
        elif self.path == CERTS_PATH:
            self._reply(200, self.certs_file.read_bytes(), "application/json")
        else:
            self._reply(404, b"not found", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("cache-control", "public, max-age=300")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = server_arguments(__doc__)
    parser.add_argument("--root", type=Path, required=True, help="the stack root (keys under ROOT/oidc)")
    args = parser.parse_args(argv)
    handler = type("Handler", (CertsHandler,), {"certs_file": ensure_keys(args.root) / CERTS_FILE})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    print(f"OIDC certificates on http://{args.host}:{args.port}{CERTS_PATH}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
