"""offsite box: look at the configured Box destination (paths relative to its root folder).

offsite box ls [PATH]              the items of one folder: type, id, size, SHA-1, name
offsite box tree [PATH] --depth N  the folder tree below PATH, N levels deep
"""

from __future__ import annotations

from pathlib import Path

import typer

from offsite.cli.browse import (
    DepthOption,
    FilesOption,
    draw,
    entry_json,
    fail,
    nested,
    print_listing,
    sorted_entries,
)
from offsite.cli.common import ConfigOption, load_cli_config
from offsite.cli.output import JsonOption, print_json
from shared.config import BoxDestination as BoxSettings
from shared.destinations.base import normalize_path
from shared.destinations.box.destination import BoxDestination
from shared.errors import OffsiteError

app = typer.Typer(no_args_is_help=True)

PathArgument = typer.Argument("", help="Folder relative to destinations.box.root_folder_id ('' = the root).")


def _destination(config_path: Path | None) -> BoxDestination:
    config = load_cli_config(config_path)
    settings: BoxSettings | None = config.destinations.box
    if settings is None:
        raise typer.BadParameter("no Box destination in the config (destinations.box)")
    return BoxDestination(settings)


@app.command("ls")
def ls(path: str = PathArgument, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List one folder: folders first, then files, with ids, sizes and SHA-1s."""
    try:
        path = normalize_path(path)
        box = _destination(config)
        entries = sorted_entries(box.entries(path))
    except (OffsiteError, ValueError) as exc:
        raise fail(exc) from None
    if as_json:
        print_json({"path": f"/{path}", "items": [entry_json(e) for e in entries]})
        return
    print_listing(entries, f"/{path}", right={"ID", "SIZE"})


@app.command("tree")
def tree(
    path: str = PathArgument,
    depth: DepthOption = 3,
    files: FilesOption = True,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Draw the folder tree below PATH (sizes of files, counts of what is deeper than --depth)."""
    try:
        path = normalize_path(path)
        box = _destination(config)
        if as_json:
            print_json(
                {"path": f"/{path}", "root_folder_id": box.root_folder_id, "items": nested(box, path, depth, files)}
            )
            return
        typer.echo(f"/{path}" if path else f"/ (folder {box.root_folder_id})")
        draw(box, path, depth, files)
    except (OffsiteError, ValueError) as exc:
        raise fail(exc) from None
