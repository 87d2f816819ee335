"""Every .tf file parses; with a terraform binary on PATH, it is also formatted as `terraform fmt` wants.

Providers cannot be downloaded here, so `terraform init/validate/plan` are never run; `fmt`
works offline and is used as a lint step only when the binary exists.
"""

from __future__ import annotations

import shutil
import subprocess

import hcl2

from tests.infra.conftest import INFRA


def test_every_tf_file_parses_and_is_formatted() -> None:
    files = sorted(INFRA.glob("*.tf"))
    assert len(files) >= 8
    for path in files:
        parsed = hcl2.loads(path.read_text())
        assert parsed, f"{path.name} parsed to nothing"
    terraform = shutil.which("terraform")
    if terraform:
        result = subprocess.run(
            [terraform, "fmt", "-check", "-diff", "-recursive", str(INFRA)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}"


def test_provider_is_pinned_to_google_only() -> None:
    parsed = hcl2.loads((INFRA / "versions.tf").read_text())
    (providers,) = parsed["terraform"][0]["required_providers"]
    assert set(providers) - {"__is_block__"} == {"google"}
    assert providers["google"]["source"] == '"hashicorp/google"'
    for path in INFRA.glob("*.tf"):
        assert "google-beta" not in path.read_text(), f"{path.name} uses google-beta; the google provider is enough"
