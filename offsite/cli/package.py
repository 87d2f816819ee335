"""offsite package: the Cloud Functions source archives that infra/ (Terraform) uploads."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("package")(package_command)


def package_command(
    out: Path = typer.Option(None, "--out", help="Output folder (default: dist/functions in the repo)."),
    write_requirements: bool = typer.Option(
        False,
        "--write-requirements",
        help="First regenerate functions/*/requirements.txt from the imports on each function's code path.",
    ),
    only: list[str] = typer.Option(None, "--only", help="Build only these source folders (e.g. upload_box)."),
) -> None:
    """Build one reproducible source archive per function folder: dist/functions/<name>.zip.

    Each holds main.py, requirements.txt and a copy of shared/. Same inputs, same bytes:
    Terraform names the uploaded object after the archive's md5, so a change redeploys.
    """
    from devstack import packaging

    sources = tuple(only) if only else packaging.function_sources()
    unknown = sorted(set(sources) - set(packaging.function_sources()))
    if unknown:
        typer.echo(f"--only: unknown function folder(s) {', '.join(unknown)}; known: {', '.join(packaging.function_sources())}", err=True)
        raise typer.Exit(2)
    if write_requirements:
        for source in sources:
            path = packaging.write_requirements(packaging.REPO, source)
            typer.echo(f"wrote {path.relative_to(packaging.REPO)}")
    try:
        archives = packaging.package(packaging.REPO, out, sources)
    except (ValueError, LookupError, FileNotFoundError) as exc:
        typer.echo(f"offsite package: {exc}", err=True)
        raise typer.Exit(1) from None
    for archive in archives:
        typer.echo(f"{archive.source:<14} {archive.path}  md5={archive.md5}  {archive.size} bytes")
