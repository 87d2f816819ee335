"""offsite box: look at the configured Box destination (paths relative to its root folder).

offsite box ls [PATH]              the items of one folder: type, id, size, SHA-1, name
offsite box tree [PATH] --depth N  the folder tree below PATH, N levels deep
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from offsite.cli.common import ConfigOption, load_cli_config
from offsite.cli.output import JsonOption, print_json, print_line, print_table
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


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _size(value: object) -> str:
    return "" if value is None else f"{int(value):,}"  # type: ignore[call-overload]


def _sorted(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (e.get("type") != "folder", str(e.get("name", "")).casefold()))


def _entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One Box item as printed by ``--json``: type, id, name, size, sha1."""
    return {key: entry.get(key) for key in ("type", "id", "name", "size", "sha1")}


@app.command("ls")
def ls(path: str = PathArgument, as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List one folder: folders first, then files, with ids, sizes and SHA-1s."""
    try:
        path = normalize_path(path)
        box = _destination(config)
        entries = _sorted(box.entries(path))
    except (OffsiteError, ValueError) as exc:
        raise _fail(exc) from None
    if as_json:
        print_json({"path": f"/{path}", "items": [_entry(e) for e in entries]})
        return
    rows = [
        [
            "d" if e.get("type") == "folder" else "-",
            e["id"],
            e.get("size"),
            e.get("sha1"),
            f"{e['name']}/" if e.get("type") == "folder" else e["name"],
        ]
        for e in entries
    ]
    print_table(("T", "ID", "SIZE", "SHA1", "NAME"), rows, right={"ID", "SIZE"})
    print_line(f"{_items(len(entries))} in /{path}", stderr=True)


@app.command("tree")
def tree(
    path: str = PathArgument,
    depth: int = typer.Option(3, "--depth", "-d", min=1, help="How many folder levels to show."),
    files: bool = typer.Option(True, "--files/--no-files", help="Show files, not only folders."),
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Draw the folder tree below PATH (sizes of files, counts of what is deeper than --depth)."""
    try:
        path = normalize_path(path)
        box = _destination(config)
        if as_json:
            print_json(
                {"path": f"/{path}", "root_folder_id": box.root_folder_id, "items": _nested(box, path, depth, files)}
            )
            return
        typer.echo(f"/{path}" if path else f"/ (folder {box.root_folder_id})")
        _draw(box, path, depth, files, "")
    except (OffsiteError, ValueError) as exc:
        raise _fail(exc) from None


def _nested(box: BoxDestination, path: str, depth: int, files: bool) -> list[dict[str, Any]]:
    """The tree below ``path`` as JSON: folders carry ``items`` (or ``item_count`` past --depth)."""
    out = []
    for entry in _sorted(box.entries(path)):
        if entry.get("type") != "folder" and not files:
            continue
        item = _entry(entry)
        if entry.get("type") == "folder":
            child = f"{path}/{entry['name']}" if path else str(entry["name"])
            if depth > 1:
                item["items"] = _nested(box, child, depth - 1, files)
            else:
                item["item_count"] = len(box.entries(child))
        out.append(item)
    return out


def _draw(box: BoxDestination, path: str, depth: int, files: bool, indent: str) -> None:
    entries = _sorted(box.entries(path))
    shown = [e for e in entries if files or e.get("type") == "folder"]
    for index, entry in enumerate(shown):
        last = index == len(shown) - 1
        branch, below = ("└── ", "    ") if last else ("├── ", "│   ")
        child = f"{path}/{entry['name']}" if path else str(entry["name"])
        if entry.get("type") == "folder":
            if depth > 1:
                typer.echo(f"{indent}{branch}{entry['name']}/ ({entry['id']})")
                _draw(box, child, depth - 1, files, indent + below)
            else:
                count = len(box.entries(child))
                typer.echo(f"{indent}{branch}{entry['name']}/ ({entry['id']}, {_items(count)})")
        else:
            typer.echo(f"{indent}{branch}{entry['name']}  {_size(entry.get('size'))} B  sha1 {entry.get('sha1')}")
