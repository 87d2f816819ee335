"""``offsite dev token``: an ID token for the local stack's HTTP trigger, as ``gcloud auth print-identity-token``.

    TOKEN=$(offsite dev token)           # for the stack's http_trigger, valid one hour
    URL=$(offsite dev token --url)       # the trigger's URL
    offsite dev token --json             # both, with the audience, email, issuer and expiry
    curl -H "Authorization: Bearer $TOKEN" "$URL/"

The token is signed by the stack's own issuer (devstack/oidc.py), whose certificates the
trigger is configured to trust; it is worthless anywhere else.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from devstack.errors import StackError
from offsite.cli.output import JsonOption, print_json, print_line

FUNCTION = "http_trigger"


def token(
    audience: Annotated[
        str | None, typer.Option("--audience", help="Token audience (default: the stack's HTTP trigger URL).")
    ] = None,
    email: Annotated[str, typer.Option("--email", help="The caller's email claim.")] = "developer@offsite.local",
    lifetime: Annotated[int, typer.Option("--lifetime", help="Seconds the token is valid.", min=1)] = 3600,
    url: Annotated[bool, typer.Option("--url", help="Print the HTTP trigger's URL instead of a token.")] = False,
    root: Annotated[str | None, typer.Option("--root", help="Stack state directory (default: .offsite).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print an ID token for the local HTTP trigger (or, with --url, its URL; with --json, both)."""
    from pathlib import Path

    from devstack import oidc
    from devstack.stack import load_stack
    from offsite.cli.dev import _root
    from shared.config_load import load_config

    try:
        info = load_stack(_root(Path(root) if root else None))
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    trigger = info.functions.get(FUNCTION)
    if trigger is None and (url or audience is None):
        typer.echo(f"error: the stack at {info.root} runs no {FUNCTION}; start it with `offsite dev up`", err=True)
        raise typer.Exit(1)
    if url and not as_json:
        print_line(str(trigger))
        return
    config = load_config(info.config_path, environ={})
    issuer, aimed_at, now = config.http.issuers[0], audience or str(trigger), int(time.time())
    minted = oidc.mint(info.root, audience=aimed_at, issuer_url=issuer, email=email, lifetime_s=lifetime, now=now)
    if not as_json:
        print_line(minted)
        return
    expires = datetime.fromtimestamp(now + lifetime, UTC).isoformat().replace("+00:00", "Z")
    print_json(
        {"url": trigger, "token": minted, "audience": aimed_at, "email": email, "issuer": issuer, "expires": expires}
    )
