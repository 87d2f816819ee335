"""Cloud Functions source archives: one reproducible zip per function source folder.

An archive holds the folder's ``main.py`` and ``requirements.txt`` plus a copy of the
``shared/`` package (no tests, no ``__pycache__``), with sorted entries, a fixed timestamp
and fixed permissions, so the same inputs always give the same bytes (and the same md5,
which Terraform puts in the uploaded object's name so that a change redeploys).

The requirements of a function are found statically: every module reachable from its
``main.py`` through ``shared`` imports (including imports inside functions, which is where
optional clients are loaded) is scanned for third-party imports, which are mapped to the
installed distributions and pinned at the versions of this environment. ``offsite package``
refuses to build an archive whose requirements.txt misses one of them.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import io
import re
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.topology import FUNCTIONS

REPO = Path(__file__).resolve().parent.parent
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
FILE_MODE = 0o100644  # regular file, rw-r--r--
IGNORED_PARTS = {"__pycache__", "tests", "test", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
IGNORED_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej", ".swp")

# Extras a function needs although our code never imports them by name: box-sdk-gen signs
# JWT assertions with pyjwt + cryptography (Box JWT app configs, as the BigQuery→Box backups use).
EXTRAS: dict[str, tuple[str, ...]] = {"box-sdk-gen": ("jwt",)}

# The runtime itself: functions-framework serves main.py; cloudevents is its event type.
ALWAYS: tuple[str, ...] = ("functions-framework",)

# Modules reached through shared/ that never run in the cloud (local stack helpers selected
# by OFFSITE_WAREHOUSE=local and the like): not followed, their imports not required.
LOCAL_ONLY_MODULES: frozenset[str] = frozenset({"shared.gcp.local_warehouse"})


@dataclass(frozen=True)
class Archive:
    source: str  # folder under functions/
    path: Path
    md5: str
    sha256: str
    size: int


def function_sources() -> tuple[str, ...]:
    """Source folders of the deployed functions (fan_out and export_table share one)."""
    return tuple(sorted({fn.source for fn in FUNCTIONS}))


# ---------------------------------------------------------------------------------------
# What a function imports
# ---------------------------------------------------------------------------------------


def _module_file(repo: Path, module: str) -> Path | None:
    base = repo.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Absolute names imported anywhere in a module, except under ``if TYPE_CHECKING:``."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if node.module == "__future__":
                continue
            yield base
            # `from shared import retry` imports the module shared.retry
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def code_path(repo: Path, source: str) -> tuple[list[Path], set[str]]:
    """Our files reachable from functions/<source>/main.py and the third-party modules they import."""
    main = repo / "functions" / source / "main.py"
    if not main.is_file():
        raise FileNotFoundError(f"functions/{source}/main.py does not exist")
    todo: list[tuple[str, Path]] = [("main", main)]
    seen: dict[str, Path] = {}
    third_party: set[str] = set()
    while todo:
        module, path = todo.pop()
        if module in seen:
            continue
        seen[module] = path
        tree = ast.parse(path.read_text(), filename=str(path))
        for name in _imports(tree, module, path.name == "__init__.py"):
            top = name.split(".")[0]
            if top == "shared":
                if any(name == m or name.startswith(m + ".") for m in LOCAL_ONLY_MODULES):
                    continue
                target = _module_file(repo, name)
                if target is not None:
                    todo.append((name, target))
                    # importing shared.a.b runs shared/__init__ and shared/a/__init__ first
                    parts = name.split(".")
                    for i in range(1, len(parts)):
                        parent = _module_file(repo, ".".join(parts[:i]))
                        if parent is not None:
                            todo.append((".".join(parts[:i]), parent))
            elif top and top not in sys.stdlib_module_names and top != "main":
                third_party.add(name)
    return sorted(seen.values()), third_party


# ---------------------------------------------------------------------------------------
# Which distributions provide them
# ---------------------------------------------------------------------------------------


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _module_index() -> dict[str, set[str]]:
    """Dotted module/package name → distributions that install files under it (this environment).

    Namespace packages (``google``, ``google.cloud``) map to many distributions; a real
    module or package maps to exactly one.
    """
    index: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        for file in dist.files or ():
            parts = file.parts
            if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")) or parts[0] == "..":
                continue
            if file.suffix in (".py", ".so", ".pyd"):
                stem = parts[-1].split(".")[0]
                dotted = list(parts[:-1]) + ([] if stem == "__init__" else [stem])
                for i in range(1, len(dotted) + 1):
                    index.setdefault(".".join(dotted[:i]), set()).add(name)
    return index


def distributions(modules: Iterable[str]) -> dict[str, str]:
    """{distribution name: installed version} for imported module names.

    A module maps to the one distribution owning its longest known prefix, so
    ``google.cloud.storage.blob`` gives google-cloud-storage; a bare namespace package
    (``google.cloud`` from ``from google.cloud import storage``) gives nothing by itself.
    Raises LookupError naming the modules nothing installed provides.
    """
    index = _module_index()
    owners: dict[str, str] = {}
    unknown: list[str] = []
    for module in sorted(set(modules)):
        parts = module.split(".")
        prefixes = [".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in index]
        if not prefixes:
            unknown.append(module)
            continue
        candidates = index[prefixes[0]]
        if len(candidates) == 1:
            (owner,) = candidates
            owners[owner] = importlib.metadata.version(owner)
    if unknown:
        raise LookupError(f"no installed distribution provides {', '.join(unknown)}")
    return owners


def required(repo: Path, source: str) -> dict[str, str]:
    """The pinned runtime distributions functions/<source> needs: {name: version}."""
    _, modules = code_path(repo, source)
    dists = distributions(modules)
    for name in ALWAYS:
        dists.setdefault(name, importlib.metadata.version(name))
    return dists


def render_requirements(dists: dict[str, str]) -> str:
    lines = [
        "# Generated by `offsite package --write-requirements` from the imports on this function's",
        "# code path (main.py + shared/), pinned at the versions the test suite runs with.",
    ]
    for name in sorted(dists, key=_normalize):
        extras = EXTRAS.get(_normalize(name), ())
        lines.append(f"{name}{'[' + ','.join(extras) + ']' if extras else ''}=={dists[name]}")
    return "\n".join(lines) + "\n"


_REQ_LINE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def read_requirements(path: Path) -> dict[str, str]:
    """{normalized name: pinned version} of a requirements.txt (only ``name==version`` lines)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines() if path.is_file() else ():
        match = _REQ_LINE.match(line)
        if match:
            pins[_normalize(match.group(1))] = match.group(3)
    return pins


def missing_requirements(repo: Path, source: str) -> list[str]:
    """Distributions the code path needs that functions/<source>/requirements.txt does not pin."""
    pinned = read_requirements(repo / "functions" / source / "requirements.txt")
    return sorted(
        f"{name}=={version}" for name, version in required(repo, source).items() if _normalize(name) not in pinned
    )


def write_requirements(repo: Path, source: str) -> Path:
    path = repo / "functions" / source / "requirements.txt"
    path.write_text(render_requirements(required(repo, source)))
    return path


# ---------------------------------------------------------------------------------------
# The archive
# ---------------------------------------------------------------------------------------


def archive_members(repo: Path, source: str) -> list[tuple[str, Path]]:
    """(name in the zip, file on disk), sorted: main.py, requirements.txt, shared/**."""
    folder = repo / "functions" / source
    members = [(name, folder / name) for name in ("main.py", "requirements.txt")]
    for name, path in members:
        if not path.is_file():
            raise FileNotFoundError(f"functions/{source}/{name} does not exist")
    for path in sorted((repo / "shared").rglob("*")):
        rel = path.relative_to(repo)
        if path.is_file() and not IGNORED_PARTS.intersection(rel.parts) and not path.name.endswith(IGNORED_SUFFIXES):
            members.append((rel.as_posix(), path))
    return sorted(members)


def build_archive(repo: Path, source: str, out_dir: Path) -> Archive:
    """Write out_dir/<source>.zip reproducibly and return its hashes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, path in archive_members(repo, source):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    data = buffer.getvalue()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{source}.zip"
    tmp = target.with_suffix(".zip.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return Archive(source, target, hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data))


def package(repo: Path = REPO, out_dir: Path | None = None, sources: Iterable[str] | None = None) -> list[Archive]:
    """Build every function's archive after checking its requirements cover its imports.

    Raises ValueError naming the function and the missing pins.
    """
    out_dir = out_dir if out_dir is not None else repo / "dist" / "functions"
    chosen = tuple(sources) if sources else function_sources()
    problems = {source: missing_requirements(repo, source) for source in chosen}
    problems = {source: missing for source, missing in problems.items() if missing}
    if problems:
        detail = "; ".join(f"functions/{s}/requirements.txt lacks {', '.join(m)}" for s, m in problems.items())
        raise ValueError(f"{detail} (run `offsite package --write-requirements`)")
    return [build_archive(repo, source, out_dir) for source in chosen]
