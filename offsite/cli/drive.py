"""offsite drive: look at a configured Google Drive destination (paths relative to its folder).

offsite drive ls [PATH] [--destination NAME]              one folder: type, id, size, SHA-1, name
offsite drive tree [PATH] [--destination NAME] --depth N  the folder tree below PATH

The commands are offsite/cli/browse.py's, shared with `offsite box`: both browse a
destination's ``entries(path)``; here is how a Drive destination is chosen and named.
"""

from __future__ import annotations

from pathlib import Path

import typer

from offsite.cli.browse import Browsed, browse_app
from offsite.cli.common import load_cli_config


def _open(config_path: Path | None, name: str | None, path: str) -> Browsed:
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
    from shared.destinations.drive.destination import DriveDestination  # only for this command (start-up)

    drive = DriveDestination(name, folders[name])
    where = f"{drive.name}:/{path}"
    return Browsed(drive, {"destination": drive.name, "path": f"/{path}"}, where=where, title=where, right={"SIZE"})


app = browse_app(
    _open,
    path_help="Folder relative to the destination's folder_id ('' = that folder).",
    destination_help="Which destinations.drive entry (default: the only one).",
)
