"""The ``http`` section: who may call the HTTP trigger (functions/http_trigger) and how tokens are checked.

Callers send a Google OIDC ID token (``gcloud auth print-identity-token``, a Cloud Scheduler
job's ``oidc_token``, or ``offsite dev token`` on the local stack). In the cloud, Cloud Run
checks it first (the ``roles/run.invoker`` bindings Terraform makes for ``invokers``); the
function checks it again — signature against ``certs_url``, ``audiences``, ``issuers``,
expiry — so a token meant for another service never starts an export.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from shared.config.types import Model, Names
from shared.validation import Problem, Problems

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
# IAM members that may be granted roles/run.invoker; never allUsers / allAuthenticatedUsers.
MEMBER_RE = re.compile(r"^(user|serviceAccount|group|domain):[^\s:]+$")
EMAIL_KINDS = ("user", "serviceAccount")


class HttpSettings(Model):
    invokers: Names = Field(
        (),
        description="IAM members allowed to call the HTTP trigger (roles/run.invoker), e.g. "
        "'user:ops@example.com', 'serviceAccount:sched@P.iam.gserviceaccount.com', 'group:…'. "
        "Never allUsers. When only user:/serviceAccount: members are listed, the function also "
        "requires the token's email to be one of them.",
    )
    audiences: Names = Field(
        (),
        description="Accepted token audiences: the function's URL(s). Terraform sets both of the "
        "deployed function's URLs (OFFSITE__HTTP__AUDIENCES); a token for any other audience gets 403.",
    )
    issuers: Names = Field(GOOGLE_ISSUERS, description="Accepted token issuers ('iss').")
    certs_url: str = Field(
        GOOGLE_CERTS_URL,
        description="Where the token-signing certificates are fetched ({key id: PEM certificate}); "
        "the local stack serves its own.",
    )
    certs_cache_s: int = Field(300, description="How long fetched certificates are reused.")
    platform_verified: bool = Field(
        False,
        description="Accept tokens whose signature Cloud Run replaced with SIGNATURE_REMOVED_BY_GOOGLE after "
        "checking it (what an IAM-protected Cloud Run service receives); their claims are still checked. "
        "Terraform turns it on for the deployed trigger, whose invokers never include allUsers; off, every "
        "token must carry a signature the function checks itself (the local stack).",
    )
    clock_skew_s: int = Field(10, description="Leeway for the token's 'iat' and 'exp'.")

    @field_validator("invokers")
    @classmethod
    def _members(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = Problems()
        for i, member in enumerate(value):
            if member in ("allUsers", "allAuthenticatedUsers"):
                problems.add((i,), f"{member!r} would make the trigger public; name users, service accounts or groups")
            elif not MEMBER_RE.match(member):
                problems.add(
                    (i,),
                    f"{member!r} is not an IAM member (expected user:EMAIL, serviceAccount:EMAIL, group:EMAIL or domain:NAME)",
                )
        problems.raise_any()
        return value

    @field_validator("certs_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise Problem(f"{value!r} is not an http(s) URL")
        return value

    def allowed_emails(self) -> frozenset[str] | None:
        """The token emails the function accepts, or None when it cannot tell (no invokers, or
        a group/domain member: then Cloud Run's IAM check is the only one)."""
        kinds = [member.split(":", 1) for member in self.invokers]
        if not kinds or any(kind not in EMAIL_KINDS for kind, _ in kinds):
            return None
        return frozenset(email.lower() for _, email in kinds)
