"""offsite box: look at the configured Box destination (paths relative to its root folder).

offsite box ls [PATH]              the items of one folder: type, id, size, SHA-1, name
offsite box tree [PATH] --depth N  the folder tree below PATH, N levels deep
"""

from __future__ import annotations

from pathlib import Path

import typer

from offsite.cli.browse import DepthOption, FilesOption, browsing, show_folder, show_tree
from offsite.cli.common import ConfigOption, load_cli_config
from offsite.cli.output import JsonOption
from shared.config import BoxDestination as BoxSettings
from shared.destinations.base import normalize_path
from shared.destinations.box.destination import BoxDestination

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
    with browsing():
        path = normalize_path(path)
        box = _destination(config)
        show_folder(box, path, as_json=as_json, head={"path": f"/{path}"}, where=f"/{path}", right={"ID", "SIZE"})


@app.command("tree")
def tree(
    path: str = PathArgument,
    depth: DepthOption = 3,
    files: FilesOption = True,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Draw the folder tree below PATH (sizes of files, counts of what is deeper than --depth)."""
    with browsing():
        path = normalize_path(path)
        box = _destination(config)
        head = {"path": f"/{path}", "root_folder_id": box.root_folder_id}
        title = f"/{path}" if path else f"/ (folder {box.root_folder_id})"
        show_tree(box, path, depth, files, as_json=as_json, head=head, title=title)
