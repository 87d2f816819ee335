"""Fixtures for the HTTP trigger tests: the running stack's http_trigger and tokens for it.

``trigger`` (function): the full stack (every function process, the local OIDC issuer) with
its environment in os.environ, the sample dataset seeded once per worker, and a
:class:`Trigger` that signs tokens with the stack's issuer key and calls the function over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc

from devstack import oidc
from devstack.state import StackInfo
from shared.config import Config
from shared.config_load import load_config

_seeded: set[str] = set()


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Trigger:
    stack: StackInfo
    config: Config

    @property
    def url(self) -> str:
        return self.stack.functions["http_trigger"]

    def token(self, **overrides: Any) -> str:
        """A token of the stack's issuer for this trigger; ``audience``, ``issuer_url``, ``email``,
        ``lifetime_s``, ``now`` override the claims."""
        claims: dict[str, Any] = {"audience": self.url, "issuer_url": self.config.http.issuers[0]}
        claims.update(overrides)
        return oidc.mint(self.stack.root, **claims)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "default",
        headers: dict[str, str] | None = None,
        timeout_s: float = 600,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {self.token() if token == 'default' else token}"
        data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
        response = requests.request(method, self.url + path, data=data, headers=sent, timeout=timeout_s)
        assert response.headers.get("content-type", "").startswith("application/json"), response.text[:300]
        return Reply(response.status_code, response.json(), dict(response.headers))


@pytest.fixture
def trigger(stack_env: StackInfo) -> Iterator[Trigger]:
    from devstack.sample_data import seed
    from shared.gcp import clients

    if str(stack_env.root) not in _seeded:
        seed(clients.bigquery_client(), stack_env.project)
        _seeded.add(str(stack_env.root))
    yield Trigger(stack_env, load_config(stack_env.config_path, environ={}))


REFUSALS = [  # what GCS may answer when the run history is listed
    pytest.param(lambda: gexc.ServiceUnavailable("GCS is currently unavailable"), id="503"),
    pytest.param(lambda: gexc.Forbidden("no storage.objects.list access to the bucket"), id="403"),
]


def refuse_history(monkeypatch: pytest.MonkeyPatch, refusal: Callable[[], Exception]) -> list[str]:
    """Make the Google storage client answer ``refusal()`` to every listing of the run history
    (``results/``), as GCS down or refusing would (fake-gcs-server cannot answer 503 or 403);
    the prefixes refused are appended to the list returned."""
    from shared.gcp import clients

    client = clients.storage_client()
    real = client.list_blobs
    refused: list[str] = []

    def list_blobs(bucket: Any, *args: Any, prefix: str | None = None, **kwargs: Any) -> Any:
        if (prefix or "").startswith("results/"):
            refused.append(prefix or "")
            raise refusal()
        return real(bucket, *args, prefix=prefix, **kwargs)

    monkeypatch.setattr(client, "list_blobs", list_blobs)
    return refused
