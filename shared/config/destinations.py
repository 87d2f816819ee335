"""``destinations``: Box (``destinations.box``), SFTP partners (``destinations.sftp.NAME``, also
the sources of collect jobs) and Google Drive folders (:mod:`shared.config.drive`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from shared.config.drive import DriveDestination
from shared.config.secrets import Secret
from shared.config.types import Model, Names, between, check_partner_names
from shared.validation import Problem, Problems, require_for_method


class BoxAuth(Model):
    method: Literal["jwt", "ccg", "developer_token"] = Field(
        "jwt", description="jwt (app config JSON), ccg, or developer_token (local only)."
    )
    jwt_config: Secret | None = Field(
        None,
        description="Box app JSON config, e.g. sm://…/offsite-box-jwt-config/versions/latest (not bq-to-box-sync's "
        "oxo-box-jwt-config: Terraform creates every secret the config names, and that one exists).",
    )
    client_id: str | None = Field(None, description="CCG client id.")
    client_secret: Secret | None = Field(None, description="CCG client secret.")
    subject_type: Literal["enterprise", "user"] = Field("enterprise", description="CCG subject: enterprise or user.")
    subject_id: str | None = Field(None, description="CCG enterprise id or user id.")
    developer_token: Secret | None = Field(None, description="Developer token (local stack and experiments only).")

    @model_validator(mode="after")
    def _method_has_what_it_needs(self) -> BoxAuth:
        needs = {
            "jwt": ("jwt_config",),
            "ccg": ("client_id", "client_secret", "subject_id"),
            "developer_token": ("developer_token",),
        }
        require_for_method(self, needs)
        return self


class BoxDestination(Model):
    root_folder_id: str = Field("0", description="Box folder id under which GCP/bigquery/... is mirrored.")
    auth: BoxAuth = Field(
        default_factory=dict, validate_default=True, description="How to authenticate."
    )  # validated where it is, so a missing jwt_config is reported as destinations.box.auth.jwt_config
    base_url: str = Field("https://api.box.com", description="API base URL (the SDK appends /2.0).")
    upload_url: str = Field("https://upload.box.com/api", description="Upload base URL.")
    oauth_url: str = Field("https://account.box.com/api/oauth2", description="OAuth base URL.")
    chunked_threshold_bytes: int = Field(
        20_000_000, description="Files this size and larger use an upload session (Box's minimum: 20000000)."
    )
    # At most 8: upload_box serves 8 uploads at once in 1 GiB, and 8 x 8 x 8 MiB parts is half of it.
    parallel_parts: Annotated[int, between(1, 8)] = Field(4, description="Parts of an upload session sent at once.")
    timeout_s: float = Field(120.0, description="Per-request timeout in seconds (more than 0).")
    calls_per_minute: Annotated[int, between(1)] | None = Field(
        None, description="Box's API call limit per user and minute (Box: ~1000); each instance paces to its share."
    )
    uploads_per_minute: Annotated[int, between(1)] | None = Field(
        None, description="Box's upload limit per user and minute (Box: 240; parts counted); paced like calls."
    )
    paced_instances: Annotated[int, between(1)] | None = Field(
        None, description="Instances sharing the limits; default: the Box-serving functions' and verify's caps."
    )

    @field_validator("chunked_threshold_bytes")
    @classmethod
    def _box_minimum(cls, value: int) -> int:
        if value < 20_000_000:
            raise Problem(f"{value!r} is below Box's 20000000-byte minimum for upload sessions")
        return value

    @field_validator("timeout_s")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        return SftpPartner._positive_timeout(value)  # 0 or less made every request a ValueError


class SftpPartner(Model):
    host: str = Field(description="SFTP server host name.")
    username: str = Field(description="Login name.")
    port: int = Field(22, description="SSH port.")
    password: Secret | None = Field(None, description="Password (or use private_key).")
    private_key: Secret | None = Field(None, description="Private key in OpenSSH/PEM form (RSA, ECDSA, Ed25519).")
    private_key_passphrase: Secret | None = Field(None, description="Passphrase of the private key.")
    known_hosts: Secret | None = Field(
        None, description="known_hosts content (pinning is the default; no auto-accept)."
    )
    host_key_fingerprint: str | None = Field(
        None, description="Alternative pin: 'SHA256:…' fingerprint of the host key."
    )
    directory: str = Field("/", description="Remote directory that deliveries go under.")
    flat: bool = Field(False, description="Put files directly in directory instead of {export}/{YYYYMMDD}/.")
    posix_rename: bool = Field(True, description="Server supports posix-rename@openssh.com; off: remove + rename.")
    hashing: Literal["none", "check-file", "sha1sum"] = Field("none", description="How to ask the server for SHA-1.")
    partial_suffix: str = Field(".partial", description="Suffix of files being written; renamed when complete.")
    max_sessions: Annotated[int, between(1)] = Field(4, description="Concurrent SFTP sessions allowed by the partner.")
    ciphers: Names = Field((), description="Preferred ciphers, e.g. ['aes128-gcm@openssh.com'].")
    connect_timeout_s: float = Field(30.0, description="TCP + SSH handshake timeout.")
    connections_per_file: Annotated[int, between(1)] = Field(
        1, description="Parallel SSH connections writing one large file."
    )
    ssh_client: Literal["auto", "openssh", "paramiko"] = Field(
        "auto",
        description="Who does the SSH work: OpenSSH's ssh binary (C, faster; key login) or paramiko; "
        "auto: ssh when it runs here and the partner logs in by private_key alone.",
    )

    @field_validator("port")
    @classmethod
    def _tcp_port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise Problem(f"{value!r} is not a TCP port (1-65535)")
        return value

    @field_validator("connect_timeout_s")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if not 0 < value < float("inf"):  # NaN too; 0 or less fails every connect, retried forever
            raise Problem(f"{value!r} must be a number of seconds more than 0")
        return value

    @field_validator("host_key_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("SHA256:"):
            raise Problem(f"{value!r} must look like 'SHA256:…'")
        return value

    @field_validator("directory")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise Problem(f"{value!r} must be an absolute path")
        return value

    @field_validator("partial_suffix")
    @classmethod
    def _suffix(cls, value: str) -> str:
        if not value or "/" in value:
            raise Problem(f"{value!r} must be non-empty, without '/'")
        return value

    @model_validator(mode="after")
    def _credentials_and_pin(self) -> SftpPartner:
        problems = Problems()
        if self.password is None and self.private_key is None:
            problems.add((), "set password or private_key")
        if self.known_hosts is None and self.host_key_fingerprint is None:
            problems.add((), "set known_hosts or host_key_fingerprint; host keys are always verified")
        if self.ssh_client == "openssh" and self.private_key is None:
            problems.add(("ssh_client",), "'openssh' logs in with private_key only; set private_key or use 'paramiko'")
        problems.raise_any()
        return self


class Destinations(Model):
    box: BoxDestination | None = Field(None, description="The Box destination (disaster-recovery copies).")
    sftp: dict[str, SftpPartner] = Field(default_factory=dict, description="SFTP partners by name.")
    drive: dict[str, DriveDestination] = Field(
        default_factory=dict, description="Google Drive folders by name (drive:NAME; shared/config/drive.py)."
    )

    @field_validator("sftp", "drive")
    @classmethod
    def _partner_names(cls, value: dict[str, SftpPartner]) -> dict[str, SftpPartner]:
        check_partner_names(value)
        return value
