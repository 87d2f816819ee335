"""Config errors name the field, the type and the shape of what they got, never a secret's value:
they reach logs, the published failure report and ``offsite config validate``."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from shared.config import Config, load_config
from shared.errors import ConfigError
from shared.secrets import Secret
from shared.validation import SECRET_FIELDS

SECRET = "S3CRET-123"
BASE = """project: p1
bucket: p1-offsite-exports
datasets:
  - name: ds1
    destinations: [box]
destinations:
  box:
    auth:
      method: developer_token
      developer_token: x
"""


def error_of(tmp_path: Path, text: str) -> str:
    path = tmp_path / "offsite.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return str(caught.value)


@pytest.mark.parametrize(
    ("slip", "expected"),
    [
        (
            "  sftp:\n    - name: acme\n      host: h\n      password: {s}\n",
            "destinations.sftp: expected a mapping, got a list of 1 (a mapping with keys name, host, password)",
        ),
        (
            "  drive:\n    r:\n      auth:\n        - service_account_key: {s}\n",
            "destinations.drive.r.auth: expected a mapping, got a list of 1 (a mapping with keys service_account_key)",
        ),
    ],
    ids=["partners-as-a-list", "auth-as-a-list"],
)
def test_a_mapping_written_as_a_list_is_shown_by_its_keys(tmp_path: Path, slip: str, expected: str) -> None:
    message = error_of(tmp_path, BASE + slip.format(s=SECRET))
    assert expected in message
    assert SECRET not in message


def test_a_value_under_a_secret_field_is_shown_by_its_type(tmp_path: Path) -> None:
    text = BASE.replace("    auth:\n      method: developer_token\n      developer_token: x\n", f"    auth: {SECRET}\n")
    message = error_of(tmp_path, text)
    assert "destinations.box.auth: expected a mapping, got a str" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("line", "where"),
    [
        (f"{SECRET}: x", "mapping values are not allowed here (line 10, column 34)"),
        (f'"{SECRET}', "line 10, column 24"),
    ],
    ids=["colon", "open-quote"],
)
def test_a_yaml_slip_names_the_line_not_its_text(tmp_path: Path, line: str, where: str) -> None:
    message = error_of(tmp_path, BASE.replace("developer_token: x", f"developer_token: {line}"))
    assert "is not valid YAML" in message and where in message
    assert SECRET not in message


def _secret_fields(model: type[BaseModel], seen: set[type]) -> set[str]:
    names: set[str] = set()
    if model in seen:
        return names
    seen.add(model)
    for name, field in model.model_fields.items():
        for part in _types_in(field.annotation):
            if part is Secret:
                names.add(name)
            elif isinstance(part, type) and issubclass(part, BaseModel):
                names |= _secret_fields(part, seen)
    return names


def _types_in(annotation: typing.Any) -> typing.Iterator[typing.Any]:
    yield annotation
    for arg in typing.get_args(annotation):
        yield from _types_in(arg)


def test_every_secret_field_of_the_config_is_hidden_in_errors() -> None:
    found = _secret_fields(Config, set())
    assert {"password", "developer_token", "service_account_key"} <= found  # the walk reaches the partners
    assert found <= SECRET_FIELDS
