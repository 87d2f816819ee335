"""offsite config: validate the configuration, show it (secrets masked), document every field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from offsite.cli.common import new_app
from offsite.cli.output import JsonOption, print_json
from shared.config import Config, config_path, from_dict, legacy, load_config, to_dict
from shared.config.docs import field_docs
from shared.errors import ConfigError

app = new_app(no_args_is_help=True)

PathOption = typer.Option(None, "--config", "-c", help="Config file (default: $OFFSITE_CONFIG or offsite.yaml).")


def _load(path: Path | None, as_json: bool = False) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        problems = str(exc).splitlines()  # one line per problem
        if as_json:
            print_json({"ok": False, "path": str(path or config_path()), "errors": problems})
        for line in problems:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None


@app.command()
def validate(path: Path | None = PathOption, as_json: JsonOption = False) -> None:
    """Check the config; print one line naming the field and value on error (exit 2)."""
    config = _load(path, as_json)
    facts = {
        "ok": True,
        "path": str(path or config_path()),
        "datasets": len(config.datasets),
        "exports": len(config.exports),
        "destinations": list(config.destination_names()),
        "collect_jobs": len(config.collect.jobs),
    }
    if as_json:
        print_json(facts)
        return
    typer.echo(
        f"ok: {facts['path']} ({facts['datasets']} datasets, {facts['exports']} exports, destinations: {', '.join(facts['destinations']) or 'none'}"
        + (f"; {facts['collect_jobs']} collect jobs" if facts["collect_jobs"] else "")
        + ")"
    )


@app.command()
def show(path: Path | None = PathOption, as_json: JsonOption = False) -> None:
    """Print the effective config (file + OFFSITE__* env overrides + defaults); secrets masked."""
    effective = to_dict(_load(path, as_json))
    if as_json:
        print_json(effective)
    else:
        typer.echo(yaml.safe_dump(effective, sort_keys=False))


@app.command()
def docs() -> None:
    """Every config field with its default and help text (generated from the config models)."""
    for line in field_docs(Config):
        typer.echo(line)


@app.command("import")
def import_(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="bq-sftp-export's JSON config, bq-to-box-sync's dataset list (a JSON/YAML list, `gcloud "
            "scheduler jobs list --format=json`, or 'DATASET [cron]' lines), a SQLite sync's .env and/or an SFTP → "
            "Drive collector's environment (KEY=VALUE lines).",
            exists=True,
            dir_okay=False,
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the config to this new file (default: stdout).")
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", help="Google Cloud project (default: from the queries or jobs).")
    ] = None,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="offsite's exports bucket (default: `<project>-offsite-exports`).")
    ] = None,
    partner: Annotated[str, typer.Option("--partner", help="Name of the imported SFTP partner.")] = "partner",
) -> None:
    """Convert the old systems' configs into one offsite config; print what was mapped and what was not."""
    if output is not None and output.exists():
        typer.echo(f"error: --output: {str(output)!r} exists; offsite never overwrites a config", err=True)
        raise typer.Exit(2)
    try:
        inputs = [(str(f), legacy.parse(f.read_text(), str(f))) for f in files]
        imported = legacy.convert(inputs, project=project, bucket=bucket, partner=partner)
        from_dict(Config, imported.config)  # the result must load like any config
    except (legacy.ImportProblem, ConfigError) as exc:
        for line in str(exc).splitlines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None
    text = "# Imported by `offsite config import`; check the lines marked 'to do' in its report.\n"
    text += yaml.safe_dump(imported.config, sort_keys=False)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
    for label, lines in (("mapped", imported.mapped), ("not mapped", imported.not_mapped), ("to do", imported.todo)):
        for line in lines:
            typer.echo(f"{label}: {line}", err=True)
    if output is not None:
        typer.echo(f"wrote {output}; next: offsite config validate -c {output}", err=True)
