"""Moved to :mod:`shared.config.load`; this name stays importable for existing call sites.

New code: ``from shared.config import load_config, config_path, to_dict``.
"""

from shared.config.load import (
    DEFAULT_PATH,
    ENV_PREFIX,
    config_path,
    deep_merge,
    env_overrides,
    from_dict,
    load_config,
    read_file,
    to_dict,
)

__all__ = [
    "DEFAULT_PATH",
    "ENV_PREFIX",
    "config_path",
    "deep_merge",
    "env_overrides",
    "from_dict",
    "load_config",
    "read_file",
    "to_dict",
]
