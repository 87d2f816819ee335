"""Google Cloud clients, built once per process from the environment.

On the local stack the environment points them at emulators (``PUBSUB_EMULATOR_HOST``,
``STORAGE_EMULATOR_HOST``, ``OFFSITE_BIGQUERY_ENDPOINT``); in the cloud the same code uses
Application Default Credentials. Tests pass their own clients instead of patching these.
"""

from __future__ import annotations

import os
from typing import Any

from shared.per_process import per_process


def project() -> str:
    value = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCP_PROJECT")
    if value:
        return value
    from shared.runtime import config

    return config().project


@per_process
def storage_client() -> Any:
    # google-cloud-storage and pubsub_v1 ship no type information: imported by module path, so mypy
    # can apply the ignore_missing_imports override (``from google.cloud import X`` cannot be matched).
    from google.cloud.storage import Client

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return Client(project=project(), credentials=AnonymousCredentials())
    return Client(project=project())


@per_process
def publisher_client() -> Any:
    from google.cloud.pubsub_v1 import PublisherClient

    return PublisherClient()


@per_process
def subscriber_client() -> Any:
    from google.cloud.pubsub_v1 import SubscriberClient

    return SubscriberClient()


@per_process
def bigquery_client() -> Any:
    from google.cloud import bigquery

    endpoint = os.environ.get("OFFSITE_BIGQUERY_ENDPOINT")
    if endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=project(), credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=endpoint)
        )
    return bigquery.Client(project=project())


def reset() -> None:
    """Drop cached clients (tests that switch stacks within one process)."""
    for fn in (storage_client, publisher_client, subscriber_client, bigquery_client):
        fn.cache_clear()
