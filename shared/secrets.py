"""Moved to :mod:`shared.config.secrets`; this name stays importable (``from shared.secrets import Secret``)."""

from shared.config.secrets import MASK, Secret, reset_cache

__all__ = ["MASK", "Secret", "reset_cache"]
