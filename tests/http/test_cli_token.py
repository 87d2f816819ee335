"""`offsite dev token`: the README's curl example works with the token and URL it prints."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from offsite.cli import app
from tests.http.conftest import Trigger


def _dev(*args: str) -> str:
    result = CliRunner().invoke(app, ["dev", *args])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_dev_token_opens_the_trigger_and_names_its_url(trigger: Trigger) -> None:
    root = str(trigger.stack.root)
    assert _dev("token", "--url", "--root", root) == trigger.url
    token = _dev("token", "--root", root)
    assert trigger.call("GET", "/", token=token).status == 200
    other = _dev("token", "--root", root, "--audience", "https://other.example.com", "--email", "me@example.com")
    refused = trigger.call("GET", "/", token=other)
    assert refused.status == 403 and "'https://other.example.com' is not this service" in refused.body["error"]


def test_dev_token_json_names_the_url_and_a_token_that_opens_it(trigger: Trigger) -> None:
    before = datetime.now(UTC)
    minted = json.loads(_dev("token", "--json", "--root", str(trigger.stack.root), "--lifetime", "600"))
    after = datetime.now(UTC)  # the command's own start-up took 8 s on a busy machine
    assert set(minted) == {"url", "token", "audience", "email", "issuer", "expires"}
    assert minted["url"] == minted["audience"] == trigger.url and minted["email"] == "developer@offsite.local"
    expires = datetime.fromisoformat(minted["expires"])
    assert before + timedelta(seconds=599) <= expires <= after + timedelta(seconds=601), minted["expires"]
    assert trigger.call("GET", "/", token=minted["token"]).status == 200


def test_dev_token_without_a_stack_says_how_to_start_one() -> None:
    with tempfile.TemporaryDirectory() as empty:
        result = CliRunner().invoke(app, ["dev", "token", "--root", empty])
    assert result.exit_code == 1
    assert "no local stack recorded" in result.output and "offsite dev up" in result.output
