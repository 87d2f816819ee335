"""Each archive imports cleanly in a fresh venv built only from its own requirements.txt.

That is what Cloud Functions' Python build does (pip install -r requirements.txt, then
functions-framework imports main.py). Beyond main.py, every shared module on the function's
code path is imported, and every third-party module it imports anywhere (also inside
functions, where optional clients load), so a requirement missing only on a lazy path is
caught too. The venvs are cached by requirements hash (tests/infra/venvs.py).
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from devstack import packaging
from shared import topology
from tests.infra.conftest import REPO
from tests.infra.venvs import cached_venv, venv_python

CHILD = r"""
import importlib, importlib.metadata, json, re, sys
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["root"])
problems = []
import functions_framework._function_registry as registry
main = importlib.import_module("main")
for entry, signature in spec["entry_points"]:
    if not callable(getattr(main, entry, None)):
        problems.append(f"main.{entry} is missing")
    elif registry.REGISTRY_MAP.get(entry) != signature:
        problems.append(f"main.{entry} is not registered as a {signature} function")
for module in spec["shared_modules"]:
    try:
        importlib.import_module(module)
    except Exception as exc:
        problems.append(f"import {module}: {exc!r}")
for name in spec["third_party"]:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        parent, _, attr = name.rpartition(".")
        if not parent or exc.name != name:
            problems.append(f"import {name}: {exc!r}")
            continue
        try:
            if not hasattr(importlib.import_module(parent), attr):
                importlib.import_module(name)
        except Exception as exc2:
            problems.append(f"from {parent} import {attr}: {exc2!r}")
# every extra asked for (box-sdk-gen[jwt]) must be installed too
for dist, extras in spec["extras"].items():
    for req in importlib.metadata.requires(dist) or []:
        for extra in extras:
            if re.search(rf"extra\s*==\s*['\"]{extra}['\"]", req):
                wanted = re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0]
                try:
                    importlib.metadata.version(wanted)
                except importlib.metadata.PackageNotFoundError:
                    problems.append(f"{dist}[{extra}] needs {wanted}, not installed")
print(json.dumps(problems))
"""


@pytest.mark.parametrize("source", packaging.function_sources())
def test_archive_imports_in_a_fresh_venv(source: str, tmp_path: Path) -> None:
    requirements = (REPO / "functions" / source / "requirements.txt").read_text()
    venv = cached_venv(f"fn-{source}", requirements)
    archive = packaging.build_archive(REPO, source, tmp_path / "dist")
    root = tmp_path / "root"
    with zipfile.ZipFile(archive.path) as zf:
        zf.extractall(root)
    files, third_party = packaging.code_path(REPO, source)
    shared_modules = sorted(
        ".".join(f.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for f in files
        if f.parts[-2:] != (source, "main.py")
    )
    spec = {
        "root": str(root),
        "entry_points": sorted(
            (fn.entry_point, "http" if fn.http else "cloudevent") for fn in topology.FUNCTIONS if fn.source == source
        ),
        "shared_modules": [m for m in shared_modules if m.startswith("shared")],
        "third_party": sorted(third_party),
        "extras": {name: list(extras) for name, extras in packaging.EXTRAS.items() if name in requirements},
    }
    result = subprocess.run(
        [str(venv_python(venv)), "-I", "-c", CHILD, json.dumps(spec)],
        check=False,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    problems = json.loads(result.stdout.strip().splitlines()[-1])
    assert problems == [], f"functions/{source} in a venv from its requirements.txt:\n" + "\n".join(problems)
