"""offsite box: look at the configured Box destination (paths relative to its root folder).

offsite box ls [PATH]              the items of one folder: type, id, size, SHA-1, name
offsite box tree [PATH] --depth N  the folder tree below PATH, N levels deep

The commands are offsite/cli/browse.py's, shared with `offsite drive`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from offsite.cli.browse import Browsed, browse_app
from offsite.cli.common import load_cli_config
from shared.config import BoxDestination as BoxSettings


def _open(config_path: Path | None, name: str | None, path: str) -> Browsed:
    if name is not None:
        raise typer.BadParameter("there is one Box destination (destinations.box): drop --destination")
    config = load_cli_config(config_path)
    settings: BoxSettings | None = config.destinations.box
    if settings is None:
        raise typer.BadParameter("no Box destination in the config (destinations.box)")
    # Imported here: box-sdk-gen is half of the CLI's start-up, and most commands never touch Box.
    from shared.destinations.box.destination import BoxDestination

    box = BoxDestination(settings)
    title = f"/{path}" if path else f"/ (folder {box.root_folder_id})"
    tree_head = {"path": f"/{path}", "root_folder_id": box.root_folder_id}
    return Browsed(box, {"path": f"/{path}"}, where=f"/{path}", title=title, right={"ID", "SIZE"}, tree_head=tree_head)


app = browse_app(_open, path_help="Folder relative to destinations.box.root_folder_id ('' = the root).")
