"""A minimal offsite config and a writer, shared by the config tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from shared.config import Config
from shared.config_load import load_config

MINIMAL = """
project: p1
bucket: my-bucket
destinations:
  sftp:
    acme:
      host: sftp.example.com
      username: u
      password: hunter2
      known_hosts: "[sftp.example.com]:22 ssh-ed25519 AAAA"
datasets:
  - name: sales
    schedule: "0 2 * * *"
    destinations: ["sftp:acme"]
"""


def write(tmp_path: Path, text: str = MINIMAL, name: str = "offsite.yaml") -> Path:
    """``text`` (dedented) in ``tmp_path/name``."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str = MINIMAL) -> Config:
    """``text`` loaded as an offsite config file, with no environment overrides."""
    return load_config(write(tmp_path, text), environ={})
