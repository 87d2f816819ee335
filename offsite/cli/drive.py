"""offsite drive: look at a configured Google Drive destination (paths relative to its folder).

offsite drive ls [PATH] [--destination NAME]              one folder: type, id, size, SHA-1, name
offsite drive tree [PATH] [--destination NAME] --depth N  the folder tree below PATH

The listing and drawing are shared with `offsite box` (offsite/cli/browse.py): both browse a
destination's ``entries(path)``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from offsite.cli.browse import DepthOption, FilesOption, browsing, show_folder, show_tree
from offsite.cli.common import ConfigOption, load_cli_config
from offsite.cli.output import JsonOption
from shared.destinations.base import normalize_path
from shared.destinations.drive.destination import DriveDestination

app = typer.Typer(no_args_is_help=True)

PathArgument = typer.Argument("", help="Folder relative to the destination's folder_id ('' = that folder).")
DestinationOption = typer.Option(
    None, "--destination", "-D", help="Which destinations.drive entry (default: the only one)."
)


def _destination(config_path: Path | None, name: str | None) -> DriveDestination:
    config = load_cli_config(config_path)
    folders = config.destinations.drive
    if not folders:
        raise typer.BadParameter("no Drive destination in the config (destinations.drive)")
    if name is None:
        if len(folders) > 1:
            raise typer.BadParameter(f"several Drive destinations ({', '.join(folders)}): pick one with --destination")
        (name,) = folders
    if name not in folders:
        raise typer.BadParameter(f"no Drive destination {name!r} (configured: {', '.join(folders)})")
    return DriveDestination(name, folders[name])


@app.command("ls")
def ls(
    path: str = PathArgument,
    destination: str | None = DestinationOption,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List one folder: folders first, then files, with ids, sizes and SHA-1s."""
    with browsing():
        path = normalize_path(path)
        drive = _destination(config, destination)
        head = {"destination": drive.name, "path": f"/{path}"}
        show_folder(drive, path, as_json=as_json, head=head, where=f"{drive.name}:/{path}", right={"SIZE"})


@app.command("tree")
def tree(
    path: str = PathArgument,
    destination: str | None = DestinationOption,
    depth: DepthOption = 3,
    files: FilesOption = True,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Draw the folder tree below PATH (sizes of files, counts of what is deeper than --depth)."""
    with browsing():
        path = normalize_path(path)
        drive = _destination(config, destination)
        head = {"destination": drive.name, "path": f"/{path}"}
        show_tree(drive, path, depth, files, as_json=as_json, head=head, title=f"{drive.name}:/{path}")
