"""Per-process state of a running function: the loaded config, cached for warm instances."""

from __future__ import annotations

from shared.config import Config
from shared.config_load import load_config
from shared.per_process import per_process


@per_process
def config() -> Config:
    """The config from ``OFFSITE_CONFIG`` (default offsite.yaml), loaded once per process."""
    return load_config()


def reset() -> None:
    config.cache_clear()
