"""The ``destinations.drive`` section: Google Drive folders as destinations (``drive:NAME``).

destinations:
  drive:
    reports:
      folder_id: 1AbC...            # the folder files go under ("root": My Drive's root)
      shared_drive_id: 0AXy...      # optional: the folder is in this Shared Drive
      auth:
        method: service_account     # or oauth
        service_account_key: sm://projects/P/secrets/drive-sa/versions/latest
        subject: reports@example.com   # optional: domain-wide delegation
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from shared.config.secrets import Secret
from shared.config.types import Model, between
from shared.validation import Problem, require_for_method

OAUTH_FIELDS = ("client_id", "client_secret", "refresh_token")
CHUNK_GRANULARITY = 256 * 1024
"""Drive keeps a resumable upload's chunks in multiples of 256 KiB (except the last)."""


class DriveAuth(Model):
    method: Literal["service_account", "oauth"] = Field(
        "service_account",
        description="service_account (a JSON key; Shared Drives or domain-wide delegation) or oauth "
        "(a user's client id, client secret and refresh token).",
    )
    service_account_key: Secret | None = Field(
        None, description="The service account's JSON key (sm://…/drive-sa-key/versions/latest)."
    )
    subject: str | None = Field(
        None, description="Domain-wide delegation: the user the service account acts as (optional)."
    )
    client_id: str | None = Field(None, description="OAuth client id (method oauth).")
    client_secret: Secret | None = Field(None, description="OAuth client secret (method oauth).")
    refresh_token: Secret | None = Field(None, description="OAuth refresh token of the user (method oauth).")
    token_uri: str = Field(
        "https://oauth2.googleapis.com/token",
        description="OAuth token endpoint (method oauth; a service account key names its own token_uri).",
    )

    @model_validator(mode="after")
    def _method_has_what_it_needs(self) -> DriveAuth:
        require_for_method(self, {"service_account": ("service_account_key",), "oauth": OAUTH_FIELDS})
        return self


class DriveDestination(Model):
    folder_id: str = Field(
        "root",
        description="Id of the Drive folder files go under; 'root' is My Drive's root (or, with "
        "shared_drive_id, the Shared Drive's root).",
    )
    shared_drive_id: str | None = Field(None, description="The Shared Drive holding folder_id (optional).")
    auth: DriveAuth = Field(default_factory=dict, validate_default=True, description="How to authenticate.")
    layout: Literal["gcp_tree", "nested", "flat"] = Field(
        "nested",
        description="Where a run's files go: GCP/bigquery/{dataset}/... (gcp_tree), {dataset}/{table}/... "
        "(nested) or straight into the folder (flat).",
    )
    api_url: str = Field("https://www.googleapis.com", description="API root (the local stack's Drive server).")
    chunk_size_bytes: Annotated[int, between(CHUNK_GRANULARITY)] = Field(
        8 * 1024 * 1024, description="Bytes per resumable-upload request (a multiple of 262144)."
    )
    timeout_s: float = Field(120.0, description="Per-request timeout in seconds (more than 0).")

    @field_validator("chunk_size_bytes")
    @classmethod
    def _granularity(cls, value: int) -> int:
        if value % CHUNK_GRANULARITY:
            raise Problem(f"{value!r} is not a multiple of 262144 (256 KiB), as Drive requires")
        return value

    @field_validator("timeout_s")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if not 0 < value < float("inf"):  # NaN too; 0 or less made every request a bare ValueError, retried
            raise Problem(f"{value!r} must be a number of seconds more than 0")
        return value

    @field_validator("folder_id", "shared_drive_id")
    @classmethod
    def _an_id(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in "/'\\ ")):
            raise Problem(f"{value!r} is not a Drive id (letters, digits, '-' and '_')")
        return value
