"""Fixtures of the infra tests: the archives, and infra/ evaluated over a config."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack import packaging
from tests.infra.hcl_eval import Module

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
EXAMPLE_CONFIG = REPO / "offsite.example.yaml"


def scheduled_message(job: dict[str, Any]) -> Any:
    """The Pub/Sub message a google_cloud_scheduler_job publishes (its pubsub_target's data, as JSON)."""
    (target,) = job["pubsub_target"]
    return json.loads(base64.b64decode(target["data"]))


@pytest.fixture(scope="session")
def archives_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every function's archive, built by devstack.packaging into a fresh folder.

    Built without the requirements check, which has its own test (test_packaging).
    """
    out = tmp_path_factory.mktemp("archives")
    for source in packaging.function_sources():
        packaging.build_archive(REPO, source, out)
    return out


@pytest.fixture
def infra(archives_dir: Path) -> Callable[..., Module]:
    """infra/ evaluated with a config (path or YAML text) and extra -var values."""

    def evaluate(config: Path | str = EXAMPLE_CONFIG, **variables: object) -> Module:
        given: dict[str, object] = {"source_archives_dir": str(archives_dir)}
        if isinstance(config, Path):
            given["config_file"] = str(config)
        else:
            given["config_yaml"] = config
        given.update(variables)
        return Module(INFRA, given)

    return evaluate


@pytest.fixture
def example(infra: Callable[..., Module]) -> Module:
    """infra/ over offsite.example.yaml (seed 000's four schedules)."""
    return infra()
