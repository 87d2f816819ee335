"""offsite's one typed configuration (pydantic v2 models) and how it is loaded.

- :mod:`shared.config.models`: the frozen models, field descriptions as help text, validators
  (:mod:`shared.config.types`: the field types they share);
- :mod:`shared.config.load`: YAML/JSON file + ``OFFSITE__SECTION__KEY`` env overrides
  (pydantic-settings) → :class:`Config`, errors as ``ConfigError`` lines naming path and value;
- :mod:`shared.config.secrets`: :class:`Secret` (literal, ``env:``, ``file:``, ``sm://``), masked;
- :mod:`shared.config.docs`: ``offsite config docs`` generated from the models.

Everything other modules import is re-exported here: ``from shared.config import Config, load_config``.
"""

from shared.config.buckets import BucketMirror
from shared.config.destinations import BoxAuth, BoxDestination, Destinations, SftpPartner
from shared.config.load import (
    DEFAULT_PATH,
    ENV_PREFIX,
    config_error,
    config_path,
    deep_merge,
    env_overrides,
    from_dict,
    load_config,
    partner_from,
    read_file,
    to_dict,
)
from shared.config.models import (
    Alerts,
    Config,
    DatasetExport,
    PubSubSettings,
    QueryExport,
    TableSelection,
    VerifySettings,
)
from shared.config.retention import Retention
from shared.config.secrets import Secret
from shared.config.types import BUCKET_RE, FORMATS, NAME_RE, PARTNER_RE, ExportFormat

__all__ = [
    "BUCKET_RE",
    "DEFAULT_PATH",
    "ENV_PREFIX",
    "FORMATS",
    "NAME_RE",
    "PARTNER_RE",
    "Alerts",
    "BoxAuth",
    "BucketMirror",
    "BoxDestination",
    "Config",
    "DatasetExport",
    "Destinations",
    "ExportFormat",
    "PubSubSettings",
    "QueryExport",
    "Retention",
    "Secret",
    "SftpPartner",
    "TableSelection",
    "VerifySettings",
    "config_error",
    "config_path",
    "deep_merge",
    "env_overrides",
    "from_dict",
    "load_config",
    "partner_from",
    "read_file",
    "to_dict",
]
