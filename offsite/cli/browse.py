"""What `offsite box` and `offsite drive` share: browsing a destination's ``entries(path)``.

Both list one folder (``ls``), draw the tree below one (``tree``) and download one file,
checked (``get``: :func:`shared.restore.fetch.fetch_file`) the same way, with the commands
:func:`browse_app` defines; only how the destination is chosen (an :data:`Opener`) and how a
path is named differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer

from offsite.cli.common import ConfigOption, new_app
from offsite.cli.output import JsonOption, print_json, print_line, print_table
from shared.destinations.base import normalize_path
from shared.errors import OffsiteError
from shared.restore.fetch import Fetched, fetch_file

DepthOption = Annotated[int, typer.Option("--depth", "-d", min=1, help="How many folder levels to show.")]
FilesOption = Annotated[bool, typer.Option("--files/--no-files", help="Show files, not only folders.")]
HERE = Path(".")


class Browsable(Protocol):
    def entries(self, path: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Browsed:
    """A destination opened for browsing ``path``, and how to name it there."""

    dest: Browsable
    head: dict[str, Any]  # what the --json output starts with
    where: str  # names the folder: the ``ls`` footer (``N items in WHERE``)
    title: str  # the first line of the drawn ``tree``
    right: set[str]  # the ``ls`` columns aligned right
    tree_head: dict[str, Any] | None = None  # the ``tree`` --json head, where it says more than ``head``


Opener = Callable[[Path | None, str | None, str], Browsed]
"""(config path, --destination, normalized path) -> the destination browsed at that path."""


def browse_app(opener: Opener, path_help: str, destination_help: str | None = None) -> typer.Typer:
    """A Typer app with ``ls`` and ``tree`` over the destination ``opener`` opens. Without
    ``destination_help`` the ``--destination`` option is hidden (a kind with one destination)."""
    app = new_app(no_args_is_help=True)
    path_argument = typer.Argument("", help=path_help)
    destination_option = typer.Option(
        None, "--destination", "-D", help=destination_help, hidden=destination_help is None
    )

    @app.command("ls")
    def ls(
        path: str = path_argument,
        destination: str | None = destination_option,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """List one folder: folders first, then files, with ids, sizes and SHA-1s."""
        with opened(opener, config, destination, path) as (b, path):
            show_folder(b.dest, path, as_json=as_json, head=b.head, where=b.where, right=b.right)

    @app.command("tree")
    def tree(
        path: str = path_argument,
        destination: str | None = destination_option,
        depth: DepthOption = 3,
        files: FilesOption = True,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Draw the folder tree below PATH (sizes of files, counts of what is deeper than --depth)."""
        with opened(opener, config, destination, path) as (b, path):
            show_tree(b.dest, path, depth, files, as_json=as_json, head=b.tree_head or b.head, title=b.title)

    @app.command("get")
    def get(
        path: Annotated[str, typer.Argument(help="The file, relative to the same folder as ls.")],
        to: Annotated[Path, typer.Argument(help="Local file, or a folder to put it in (default: here).")] = HERE,
        destination: str | None = destination_option,
        force: Annotated[bool, typer.Option("--force", help="Replace an existing local file.")] = False,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Download one file, checked against the size and hash the destination lists (written
        under a temporary name, renamed into place only once it matches). Exit 1 if it does not."""
        with opened(opener, config, destination, path) as (b, path):
            dest: Any = b.dest  # a whole Destination: fetch_file reads it back
            show_fetched(fetch_file(dest, path, to, force=force), b.where, as_json=as_json)

    return app


def show_fetched(fetched: Fetched, where: str, *, as_json: bool) -> None:
    """``get``'s one line (or JSON): where from, where to, size, SHA-1 and what it was checked against."""
    if as_json:
        print_json(fetched.to_dict())
        return
    checked = "size only: the destination lists no hash" if fetched.check == "size" else f"its {fetched.check} matches"
    print_line(f"{where} → {fetched.local}: {fetched.size:,} bytes, sha1 {fetched.sha1} ({checked})")


@contextmanager
def opened(opener: Opener, config: Path | None, destination: str | None, path: str) -> Iterator[tuple[Browsed, str]]:
    """The destination ``opener`` opens at ``path`` (normalized), and that path. A bad path or a
    destination that cannot be read: one ``error:`` line and exit 1."""
    try:
        path = normalize_path(path)
        yield opener(config, destination, path), path
    except (OffsiteError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _size(value: object) -> str:
    return "" if value is None else f"{int(value):,}"  # type: ignore[call-overload]


def sorted_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Folders first, then files, each by name ignoring case."""
    return sorted(entries, key=lambda e: (e.get("type") != "folder", str(e.get("name", "")).casefold()))


def entry_json(entry: dict[str, Any]) -> dict[str, Any]:
    """One item as printed by ``--json``: type, id, name, size, sha1."""
    return {key: entry.get(key) for key in ("type", "id", "name", "size", "sha1")}


def show_folder(
    dest: Browsable, path: str, *, as_json: bool, head: dict[str, Any], where: str, right: set[str]
) -> None:
    """``ls``: the items of one folder, folders first — ``head`` plus ``items`` as JSON, or a table
    and ``N items in WHERE`` on stderr."""
    entries = sorted_entries(dest.entries(path))
    if as_json:
        print_json({**head, "items": [entry_json(e) for e in entries]})
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
    print_table(("T", "ID", "SIZE", "SHA1", "NAME"), rows, right=right)
    print_line(f"{items(len(entries))} in {where}", stderr=True)


def show_tree(
    dest: Browsable, path: str, depth: int, files: bool, *, as_json: bool, head: dict[str, Any], title: str
) -> None:
    """``tree``: ``head`` plus the nested ``items`` as JSON, or ``title`` and the drawn tree."""
    if as_json:
        print_json({**head, "items": nested(dest, path, depth, files)})
        return
    typer.echo(title)
    draw(dest, path, depth, files)


def nested(dest: Browsable, path: str, depth: int, files: bool) -> list[dict[str, Any]]:
    """The tree below ``path`` as JSON: folders carry ``items`` (or ``item_count`` past --depth)."""
    out = []
    for entry in sorted_entries(dest.entries(path)):
        if entry.get("type") != "folder" and not files:
            continue
        item = entry_json(entry)
        if entry.get("type") == "folder":
            child = f"{path}/{entry['name']}" if path else str(entry["name"])
            if depth > 1:
                item["items"] = nested(dest, child, depth - 1, files)
            else:
                item["item_count"] = len(dest.entries(child))
        out.append(item)
    return out


def draw(dest: Browsable, path: str, depth: int, files: bool, indent: str = "") -> None:
    """Print the tree below ``path``, ``depth`` folder levels deep."""
    entries = sorted_entries(dest.entries(path))
    shown = [e for e in entries if files or e.get("type") == "folder"]
    for index, entry in enumerate(shown):
        last = index == len(shown) - 1
        branch, below = ("└── ", "    ") if last else ("├── ", "│   ")
        child = f"{path}/{entry['name']}" if path else str(entry["name"])
        if entry.get("type") == "folder":
            if depth > 1:
                typer.echo(f"{indent}{branch}{entry['name']}/ ({entry['id']})")
                draw(dest, child, depth - 1, files, indent + below)
            else:
                count = len(dest.entries(child))
                typer.echo(f"{indent}{branch}{entry['name']}/ ({entry['id']}, {items(count)})")
        else:
            typer.echo(f"{indent}{branch}{entry['name']}  {_size(entry.get('size'))} B  sha1 {entry.get('sha1')}")
