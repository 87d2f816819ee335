"""appProperties as Drive keeps and finds them, judged by google-api-python-client: files.list
``appProperties has { key='k' and value='v' }`` terms (several joined by ``and``), updates
that change what a query finds, and Drive's documented 124-byte limit on key + value."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError

from tests.driveapi.test_api import make_folder, service, upload

__all__ = ["service"]


def has(key: str, value: str) -> str:
    quoted = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"appProperties has {{ key='{key}' and value='{quoted}' }}"


def names(service: Any, q: str) -> list[str]:
    return sorted(f["name"] for f in service.files().list(q=q, fields="files(name)").execute()["files"])


def test_files_are_found_by_every_app_property_of_the_query(service: Any) -> None:
    folder = make_folder(service, "labelled")
    a = {"offsite_partner": "acme", "offsite_path": "/out/it's a.csv", "offsite_size": "3"}
    upload(service, folder, "a.csv", b"abc", resumable=True, body={"appProperties": a})
    upload(service, folder, "b.csv", b"abc", resumable=False, body={"appProperties": {**a, "offsite_size": "4"}})
    upload(service, folder, "c.csv", b"abc", resumable=False, body={"properties": a})  # public, not app
    live = f"'{folder}' in parents and trashed = false"

    assert names(service, f"{live} and {has('offsite_partner', 'acme')}") == ["a.csv", "b.csv"]
    both = f"{live} and {has('offsite_partner', 'acme')} and {has('offsite_path', a['offsite_path'])}"
    assert names(service, f"{both} and {has('offsite_size', '3')}") == ["a.csv"]
    assert names(service, f"{both} and {has('offsite_size', '5')}") == []
    assert names(service, f"{live} and {has('offsite_partner', 'acm')}") == []  # whole values only
    assert names(service, f"{live} and properties has {{ key='offsite_size' and value='3' }}") == ["c.csv"]


def test_an_update_changes_what_the_query_finds(service: Any) -> None:
    folder = make_folder(service, "relabelled")
    made = upload(service, folder, "x.csv", b"1", resumable=False, body={"appProperties": {"k": "v1", "keep": "y"}})
    service.files().update(fileId=made["id"], body={"appProperties": {"k": "v2"}}).execute()
    live = f"'{folder}' in parents"
    assert names(service, f"{live} and {has('k', 'v1')}") == []
    assert names(service, f"{live} and {has('k', 'v2')} and {has('keep', 'y')}") == ["x.csv"]  # merged
    got = service.files().get(fileId=made["id"], fields="appProperties").execute()
    assert got == {"appProperties": {"k": "v2", "keep": "y"}}


@pytest.mark.parametrize("how", ["multipart", "resumable", "update"])
def test_key_and_value_over_124_bytes_are_refused(service: Any, how: str) -> None:
    folder = make_folder(service, f"limit-{how}")
    fits = {"offsite_path": "p" * (124 - len("offsite_path"))}
    too_long = {"offsite_path": "é" * 57}  # 12 + 114 bytes in UTF-8, though only 69 characters
    made = upload(service, folder, "fits.csv", b"1", resumable=how == "resumable", body={"appProperties": fits})
    assert made["appProperties"] == fits
    with pytest.raises(HttpError) as refused:
        if how == "update":
            service.files().update(fileId=made["id"], body={"appProperties": too_long}).execute()
        else:
            upload(service, folder, "long.csv", b"1", resumable=how == "resumable", body={"appProperties": too_long})
    assert refused.value.resp.status == 400 and "124" in str(refused.value)
    assert names(service, f"'{folder}' in parents") == ["fits.csv"]
