"""The layout docs/architecture.md describes is the one the imports have.

- no import cycle between modules of ``shared/`` (imports inside functions included: a lazy
  import that hides a cycle is still a cycle);
- every package and top-level module of ``shared/`` is named in the module map;
- the verify engine and the delivery operation import no backend; nothing outside a backend
  package imports another backend's internals;
- nothing in ``shared/`` or ``functions/`` reads an environment switch that selects a local
  code path.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SHARED.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Modules of ``shared`` that ``path`` imports (``from a import b`` counts ``a.b`` when it is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name in known:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges = {name: imports_of(path, known) for name, path in mods.items()}
    # importing a module imports its packages first
    for name in list(edges):
        edges[name] = {m for m in edges[name] if m != name and not name.startswith(m + ".")}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_shared() -> None:
    assert find_cycle(graph()) is None, " → ".join(find_cycle(graph()) or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_architecture_doc_names_every_package_and_module() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`(shared/[A-Za-z0-9_/*.]+)`", doc))
    missing = []
    for entry in sorted(SHARED.iterdir()):
        if entry.name.startswith("__") or entry.name.startswith("."):
            continue
        rel = f"shared/{entry.name}" + ("/" if entry.is_dir() else "")
        globbed = any(re.fullmatch(n.replace(".", r"\.").replace("*", ".*"), rel) for n in named if "*" in n)
        if rel not in named and rel.rstrip("/") not in named and not globbed:
            missing.append(rel)
    assert missing == [], f"docs/architecture.md does not name {missing}"
    for name in named:
        assert any(ROOT.joinpath(name.rstrip("/")).parent.glob(Path(name.rstrip("/")).name)), f"{name} does not exist"


def test_backend_neutral_code_imports_no_backend() -> None:
    edges = graph()
    neutral = [m for m in edges if m.startswith(("shared.verify.engine", "shared.delivery."))]
    assert neutral, "the neutral modules moved: update this test"
    for module in neutral:
        backends = sorted(
            m for m in edges[module] if m.startswith(("shared.destinations.box", "shared.destinations.sftp"))
        )
        assert backends == [], f"{module} imports {backends}"


def test_backends_do_not_reach_into_each_other() -> None:
    edges = graph()
    for module, deps in edges.items():
        for kind in ("box", "sftp"):
            inside = f"shared.destinations.{kind}"
            if module.startswith(inside) or module == "shared.destinations.factory":
                continue  # the factory's table is the one place that names every backend
            reached = sorted(d for d in deps if d.startswith(inside + "."))
            if module.startswith("shared.destinations."):
                assert reached == [], f"{module} reaches into {reached}"


def test_no_environment_switch_selects_a_local_code_path() -> None:
    offenders = []
    for path in [*SHARED.rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        text = path.read_text()
        for switch in ("OFFSITE_WAREHOUSE", "OFFSITE_BIGQUERY_GRPC", "LocalWarehouse", "local_warehouse"):
            if switch in text:
                offenders.append(f"{path.relative_to(ROOT)}: {switch}")
    assert offenders == []
