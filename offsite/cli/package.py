"""offsite package: the Cloud Functions source archives that infra/ (Terraform) uploads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from offsite.cli.output import JsonOption, print_json, print_table


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("package")(package_command)


def package_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: dist/functions in the repo).")
    ] = None,
    write_requirements: Annotated[
        bool,
        typer.Option(
            "--write-requirements",
            help="First regenerate functions/*/requirements.txt from the imports on each function's code path.",
        ),
    ] = False,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Build only these source folders (e.g. upload_box).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Build one reproducible source archive per function folder: `dist/functions/<name>.zip`.

    Each holds main.py, requirements.txt and a copy of shared/. Same inputs, same bytes:
    Terraform names the uploaded object after the archive's md5, so a change redeploys.
    """
    from devstack import packaging

    known = packaging.function_sources()
    sources = tuple(only) if only else known
    unknown = sorted(set(sources) - set(known))
    if unknown:
        typer.echo(f"--only: unknown function folder(s) {', '.join(unknown)}; known: {', '.join(known)}", err=True)
        raise typer.Exit(2)
    if write_requirements:
        for source in sources:
            path = packaging.write_requirements(packaging.REPO, source)
            typer.echo(f"wrote {path.relative_to(packaging.REPO)}", err=as_json)
    try:
        archives = packaging.package(packaging.REPO, out, sources)
    except (ValueError, LookupError, FileNotFoundError) as exc:
        typer.echo(f"offsite package: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        fields = ("source", "path", "md5", "sha256", "size")
        print_json([{name: getattr(a, name) for name in fields} for a in archives])
        return
    rows = [[a.source, a.path, a.md5, a.size] for a in archives]
    print_table(("FUNCTION", "ARCHIVE", "MD5", "BYTES"), rows, right={"BYTES"})
