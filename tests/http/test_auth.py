"""The HTTP trigger refuses requests without a good Google-style OIDC ID token (401/403, saying why).

Tokens are signed by the local stack's issuer (devstack/oidc.py) or, for the bad-signature
case, by a key of the test's own; the function checks them against the issuer's certificates
over HTTP, as in the cloud against Google's.
"""

from __future__ import annotations

import time

import pytest

from devstack import oidc
from shared.config.http import HttpSettings
from shared.http_trigger import auth
from tests.http.conftest import Trigger


def test_health_answers_with_a_token(trigger: Trigger) -> None:
    reply = trigger.call("GET", "/")
    assert reply.status == 200
    assert {k: v for k, v in reply.body.items() if k != "timestamp"} == {
        "status": "healthy",
        "service": "offsite-http-trigger",
    }


def test_missing_token_is_401(trigger: Trigger) -> None:
    reply = trigger.call("GET", "/", token=None)
    assert reply.status == 401
    assert "missing Authorization header" in reply.body["error"]
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_not_a_bearer_token_is_401(trigger: Trigger) -> None:
    reply = trigger.call("POST", "/sync/sales", token=None, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert reply.status == 401
    assert "'Bearer ID_TOKEN'" in reply.body["error"] and "'Basic'" in reply.body["error"]
    assert trigger.call("GET", "/", token="not-a-jwt").status == 401


def test_token_signed_by_another_key_is_401(trigger: Trigger, tmp_path) -> None:  # type: ignore[no-untyped-def]
    forged = oidc.mint(tmp_path, audience=trigger.url, issuer_url=trigger.config.http.issuers[0])
    reply = trigger.call("GET", "/", token=forged)
    assert reply.status == 401
    assert reply.body["error"].startswith("invalid token:")


def test_expired_token_is_401(trigger: Trigger) -> None:
    expired = trigger.token(now=time.time() - 7200, lifetime_s=3600)
    reply = trigger.call("GET", "/", token=expired)
    assert reply.status == 401
    assert "expired" in reply.body["error"]


def test_token_for_another_service_is_403(trigger: Trigger) -> None:
    other = trigger.token(audience="https://elsewhere.example.com")
    reply = trigger.call("POST", "/sync", {"dataset": "sales"}, token=other)
    assert reply.status == 403
    assert "'https://elsewhere.example.com' is not this service" in reply.body["error"]
    assert trigger.url in reply.body["error"]


def test_a_token_for_a_path_of_this_service_is_accepted_but_not_for_a_lookalike_host(trigger: Trigger) -> None:
    """Cloud Scheduler and Cloud Tasks put the full target URL in the token by default
    (…/sync/sales); it used to be refused with 403 although Cloud Run let it through."""
    assert trigger.call("GET", "/", token=trigger.token(audience=trigger.url + "/sync/sales")).status == 200
    for other in (trigger.url + ".evil.example.com", trigger.url + "evil/sync"):
        reply = trigger.call("GET", "/", token=trigger.token(audience=other))
        assert reply.status == 403 and "is not this service" in reply.body["error"]


def _unsigned(header: object, payload: object) -> str:
    import base64
    import json

    def part(value: object) -> str:
        text = value if isinstance(value, str) else json.dumps(value)
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.c2ln"


def test_malformed_tokens_are_401_not_a_crash(trigger: Trigger) -> None:
    """A list as the header's kid (once the certificates were cached) and JSON nested 2,000
    deep used to raise TypeError / RecursionError: an HTML 500 instead of the JSON 401."""
    deep = "[" * 2000 + "]" * 2000  # JSON text (json.dumps cannot nest this deep); fits a header
    trigger.call("GET", "/")  # the certificates are cached now
    for token in (
        _unsigned({"alg": "RS256", "kid": ["x"]}, {"aud": trigger.url}),
        _unsigned(deep, {"aud": trigger.url}),
        _unsigned({"alg": "RS256", "kid": "x"}, deep),
    ):
        reply = trigger.call("GET", "/", token=token)
        assert reply.status == 401 and reply.body["error"].startswith(("invalid token", "the bearer token")), reply


def test_token_of_another_issuer_is_401(trigger: Trigger) -> None:
    reply = trigger.call("GET", "/", token=trigger.token(issuer_url="https://issuer.example.com"))
    assert reply.status == 401
    assert "issuer 'https://issuer.example.com' is not one of" in reply.body["error"]


def test_invokers_limit_the_emails_a_token_may_name(trigger: Trigger) -> None:
    """With only user:/serviceAccount: invokers the function checks the token's email too
    (here in-process, against the stack's real certificate server)."""
    http = trigger.config.http
    settings = HttpSettings(
        invokers=("user:ops@example.com", "serviceAccount:sched@p.iam.gserviceaccount.com"),
        audiences=http.audiences,
        issuers=http.issuers,
        certs_url=http.certs_url,
    )
    ok = auth.verify("Bearer " + trigger.token(email="OPS@example.com"), settings)
    assert ok.email == "OPS@example.com" and ok.audience == trigger.url
    with pytest.raises(auth.Unauthorized) as refused:
        auth.verify("Bearer " + trigger.token(email="intruder@example.com"), settings)
    assert refused.value.status == 403 and "'intruder@example.com' is not an invoker" in str(refused.value)
    # a group cannot be checked from the token: Cloud Run's IAM check is the only one then
    grouped = settings.model_copy(update={"invokers": ("group:ops@example.com",)})
    assert auth.verify("Bearer " + trigger.token(email="intruder@example.com"), grouped).email


def test_public_invokers_are_refused_by_the_config() -> None:
    from shared.config import Config, from_dict
    from shared.errors import ConfigError

    with pytest.raises(ConfigError) as bad:
        from_dict(Config, {"project": "p", "bucket": "bkt", "http": {"invokers": ["allUsers", "ops@example.com"]}})
    text = str(bad.value)
    assert "http.invokers[0]: 'allUsers' would make the trigger public" in text
    assert "http.invokers[1]: 'ops@example.com' is not an IAM member" in text


def _stripped(token: str) -> str:
    """The token as Cloud Run forwards it after checking it: signature replaced."""
    return token.rsplit(".", 1)[0] + "." + auth.REMOVED_SIGNATURE


def test_a_removed_signature_is_refused_where_cloud_run_did_not_check_it(trigger: Trigger) -> None:
    reply = trigger.call("GET", "/", token=_stripped(trigger.token()))
    assert reply.status == 401
    assert "SIGNATURE_REMOVED_BY_GOOGLE" in reply.body["error"] and "platform_verified is off" in reply.body["error"]


def test_behind_cloud_run_the_claims_of_a_checked_token_are_still_checked(trigger: Trigger) -> None:
    http = trigger.config.http
    settings = HttpSettings(
        audiences=http.audiences,
        issuers=http.issuers,
        invokers=("user:ops@example.com",),
        certs_url="http://127.0.0.1:9/unreachable",  # never fetched for a checked token
        platform_verified=True,
    )
    caller = auth.verify("Bearer " + _stripped(trigger.token(email="ops@example.com")), settings)
    assert caller.email == "ops@example.com"
    for token, status, words in [
        (trigger.token(email="ops@example.com", now=time.time() - 7200, lifetime_s=60), 401, "expired"),
        (trigger.token(email="ops@example.com", audience="https://other.example.com"), 403, "is not this service"),
        (trigger.token(email="eve@example.com"), 403, "is not an invoker"),
        (trigger.token(email="ops@example.com", issuer_url="https://evil.example.com"), 401, "issuer"),
    ]:
        with pytest.raises(auth.Unauthorized) as refused:
            auth.verify("Bearer " + _stripped(token), settings)
        assert refused.value.status == status and words in str(refused.value)


def test_tokens_with_made_up_key_ids_do_not_fetch_the_certificates_each_time(trigger: Trigger) -> None:
    """Each unknown kid used to fetch the certificates again (20 junk tokens: 22 fetches)."""
    fetched: list[str] = []

    def fetch(url: str) -> dict[str, str]:
        fetched.append(url)
        return dict(auth.fetch_certs(url))

    cache = auth.CertsCache(fetch)
    settings = trigger.config.http
    assert auth.verify("Bearer " + trigger.token(), settings, certs=cache).audience == trigger.url
    for n in range(20):
        with pytest.raises(auth.Unauthorized):
            auth.verify("Bearer " + _unsigned({"alg": "RS256", "kid": f"made-up-{n}"}, {}), settings, certs=cache)
    assert len(fetched) == 1
