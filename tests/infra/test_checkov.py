"""checkov finds nothing unjustified in infra/.

checkov pins its own python-hcl2 fork (bc-python-hcl2, also the `hcl2` module) and older
packaging/boto stacks, which would clobber the project venv, so it runs from a venv of its
own built once by tests/infra/venvs.py. It is run with --skip-download and BC_SKIP_MAPPING:
nothing is fetched from its vendor's platform.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

from tests.infra.conftest import INFRA
from tests.infra.venvs import cached_venv, venv_python

CHECKOV = "checkov==3.3.30"
SKIP = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)")


def _skips() -> dict[str, list[str]]:
    """{check id: [justifications]} from the inline skip comments of every .tf file."""
    found: dict[str, list[str]] = {}
    for path in sorted(INFRA.glob("*.tf")):
        for line in path.read_text().splitlines():
            match = SKIP.search(line)
            if match:
                found.setdefault(match.group(1), []).append(match.group(2).strip())
    return found


def test_checkov_has_no_unjustified_finding() -> None:
    venv = cached_venv("checkov", f"{CHECKOV}\n")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_GUIDE": "TRUE", "LOG_LEVEL": "ERROR"}
    result = subprocess.run(
        [
            str(venv_python(venv)),
            "-m",
            "checkov.main",
            "-d",
            str(INFRA),
            "--framework",
            "terraform",
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    results, summary = report["results"], report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): {c['check_name']}"
        for c in results["failed_checks"]
    ]
    assert failed == [], "checkov findings to fix or justify with #checkov:skip=ID:reason:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 20, "checkov checked (almost) nothing: did it parse infra/?"

    skips = _skips()
    for check_id, reasons in skips.items():
        for reason in reasons:
            assert len(reason) >= 30, f"#checkov:skip={check_id} needs a real justification, got {reason!r}"
    skipped = {c["check_id"] for c in results["skipped_checks"]}
    assert skipped == set(skips), f"stale or unknown skip comments: {sorted(set(skips) ^ skipped)}"
