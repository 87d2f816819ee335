"""`offsite dev up | status | down | logs` as a user runs them, and how bad input fails.

Every bad input must give one `error:` line naming the cause and the fix, exit non-zero,
and leave no process behind (checked with psutil through the marker every stack process
carries in its environment).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import paramiko
import psutil
import pytest

from devstack.plan import MARKER
from devstack.procs import marked
from devstack.stack import load_stack

OFFSITE = str(Path(sys.executable).parent / "offsite")
LIGHT = ["--no-functions", "--without", "bigquery,box,drive,webhook"]


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="offsite-cli-"))
    path.chmod(0o755)
    yield path
    subprocess.run([OFFSITE, "dev", "down"], cwd=path, capture_output=True, check=False, timeout=120)
    shutil.rmtree(path, ignore_errors=True)


def dev(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [OFFSITE, "dev", *args], cwd=workdir, env=full_env, capture_output=True, text=True, timeout=180, check=False
    )


def strays(workdir: Path) -> list[psutil.Process]:
    return marked(MARKER, str(workdir / ".offsite"))


def before_pids(status: dict) -> dict[str, int]:
    return {c["name"]: c["pid"] for c in status["components"]}


def test_up_twice_status_logs_down(workdir: Path) -> None:
    first = dev(workdir, "up", *LIGHT)
    assert first.returncode == 0, first.stderr
    for name in ("pubsub", "gcs", "sftp", "relay"):
        assert any(line.split()[0] == name and " ok" in line for line in first.stdout.splitlines() if line.strip()), (
            first.stdout
        )
    before = json.loads(dev(workdir, "status", "--json").stdout)
    assert before["running"] is True
    assert {c["name"] for c in before["components"]} == {"pubsub", "gcs", "sftp", "relay", "push"}
    assert all(c["health"] == "ok" and c["port"] and c["pid"] for c in before["components"])

    second = dev(workdir, "up", *LIGHT)
    assert second.returncode == 0 and "already running" in second.stdout
    after = json.loads(dev(workdir, "status", "--json").stdout)
    assert [(c["name"], c["pid"], c["port"]) for c in after["components"]] == [
        (c["name"], c["pid"], c["port"]) for c in before["components"]
    ]
    third = json.loads(dev(workdir, "up", *LIGHT, "--json").stdout)
    assert third["already_running"] is True and third["running"] is True
    assert [(c["name"], c["pid"]) for c in third["components"]] == [(c["name"], c["pid"]) for c in after["components"]]

    table = dev(workdir, "status")  # a plain table when not on a terminal
    assert table.returncode == 0 and "\x1b" not in table.stdout
    lines = table.stdout.splitlines()
    assert lines[1].split() == ["COMPONENT", "ADDRESS", "MORE", "PORTS", "PID", "HEALTH", "NOTE"]
    for comp in after["components"]:
        cells = next(line.split() for line in lines if line.split()[:1] == [comp["name"]])
        assert cells[1] == f"127.0.0.1:{comp['port']}" and str(comp["pid"]) in cells and "ok" in cells

    restarted = dev(workdir, "restart", "relay")
    assert restarted.returncode == 0 and restarted.stdout.startswith("restarted relay"), restarted.stderr
    again = dev(workdir, "restart", "relay", "--json")
    assert again.returncode == 0, again.stderr
    relay_port = next(c["port"] for c in before["components"] if c["name"] == "relay")
    restarted_json = json.loads(again.stdout)
    assert restarted_json == {
        "restarted": "relay",
        "port": relay_port,
        "pid": restarted_json["pid"],
        "health": "ok",
        "lost": None,  # the relay keeps no state
    }
    assert restarted_json["pid"] != before_pids(before)["relay"]
    refused = dev(workdir, "restart", "pubsub")
    assert refused.returncode == 1 and "would lose every topic" in refused.stderr
    pids = {c["name"]: c["pid"] for c in json.loads(dev(workdir, "status", "--json").stdout)["components"]}
    assert pids["relay"] != before_pids(before)["relay"]
    push = psutil.Process(pids["push"])
    push.kill()
    push.wait(timeout=10)
    repaired = dev(workdir, "up", *LIGHT)  # restarts what died, keeps the emulator (and its state)
    assert repaired.returncode == 0, repaired.stderr
    now = {
        c["name"]: (c["pid"], c["health"]) for c in json.loads(dev(workdir, "status", "--json").stdout)["components"]
    }
    assert now["pubsub"] == (pids["pubsub"], "ok") and now["relay"] == (pids["relay"], "ok")
    assert now["push"][0] != pids["push"] and now["push"][1] == "ok"

    logs = dev(workdir, "logs", "relay", "-n", "5")
    assert logs.returncode == 0 and "devstack.relay" in logs.stdout
    unknown = dev(workdir, "logs", "nope")
    assert unknown.returncode != 0 and "no log for component 'nope'" in unknown.stderr

    # An open SFTP session makes sshd fork session processes: `down` must end them too.
    info = load_stack(workdir / ".offsite")
    client = paramiko.SSHClient()
    client.load_host_keys(str(info.sftp.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        port=info.sftp.port,
        username=info.sftp.username,
        key_filename=str(info.sftp.key_path),
        look_for_keys=False,
        allow_agent=False,
    )
    client.open_sftp().listdir(".")
    sshd = psutil.Process(info.component("sftp").pid)
    pids = {c["pid"] for c in after["components"]} | {p.pid for p in sshd.children(recursive=True)}
    assert len(pids) > len(after["components"]), "expected sshd session processes"

    down = dev(workdir, "down")
    client.close()
    assert down.returncode == 0 and "stopped:" in down.stdout
    assert [
        pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ] == []
    assert strays(workdir) == []
    assert dev(workdir, "status").returncode != 0
    assert json.loads(dev(workdir, "status", "--json").stdout)["running"] is False
    assert dev(workdir, "down").stdout.strip() == "nothing running"
    assert json.loads(dev(workdir, "down", "--json").stdout) == {"stopped": []}


def _held_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


BAD_INPUTS = {
    "broken overlay": (["--config", "overlay.yaml"], {}, "datasets: [unclosed\n", "is not valid YAML", "fix the YAML"),
    "unknown key": (
        ["--config", "overlay.yaml"],
        {},
        "verify: {deadline_minute: 5}\n",
        "unknown key 'deadline_minute'",
        "fix the overlay",
    ),
    "missing overlay": (["--config", "absent.yaml"], {}, None, "absent.yaml does not exist", "pass an existing"),
    "missing java": (
        [],
        {"OFFSITE_DEV_JAVA": "/nonexistent/java"},
        None,
        "java (for the Pub/Sub emulator) not found at /nonexistent/java",
        "OFFSITE_DEV_JAVA",
    ),
    "missing jar": (
        [],
        {"OFFSITE_DEV_PUBSUB_JAR": "/nonexistent/emu.jar"},
        None,
        "Pub/Sub emulator jar not found",
        "google-cloud-cli-pubsub-emulator",
    ),
    "missing sshd": (
        [],
        {"OFFSITE_DEV_SSHD": "/nonexistent/sshd"},
        None,
        "sshd not found at /nonexistent/sshd",
        "openssh-server",
    ),
    "unknown function": (["--functions", "nope"], {}, None, "unknown function 'nope'", "choose from fan_out"),
    "unknown component": (["--without", "pubsub"], {}, None, "cannot leave out 'pubsub'", "optional components are"),
    "bad sftp backend": (["--sftp", "ftp"], {}, None, "sftp backend 'ftp' is unknown", "openssh"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_fails_with_one_clear_line_and_no_process(workdir: Path, case: str) -> None:
    args, env, overlay, cause, fix = BAD_INPUTS[case]
    if overlay is not None:
        (workdir / "overlay.yaml").write_text(overlay)
    args = [a if a not in ("overlay.yaml", "absent.yaml") else str(workdir / a) for a in args]
    functions = [] if "--functions" in args else ["--no-functions"]
    done = dev(workdir, "up", *functions, "--without", "bigquery,box", *args, env=env)
    _assert_failed_cleanly(workdir, done, cause, fix)


def test_pinned_port_in_use(workdir: Path) -> None:
    sock, port = _held_port()
    with sock:
        done = dev(workdir, "up", *LIGHT, env={"OFFSITE_DEV_PORT_PUBSUB": str(port)})
    _assert_failed_cleanly(
        workdir,
        done,
        f"port {port} for pubsub (pinned by OFFSITE_DEV_PORT_PUBSUB) is already in use",
        "unset OFFSITE_DEV_PORT_PUBSUB",
    )


def test_pinned_free_port_is_used(workdir: Path) -> None:
    sock, port = _held_port()
    sock.close()
    done = dev(workdir, "up", *LIGHT, env={"OFFSITE_DEV_PORT_RELAY": str(port)})
    assert done.returncode == 0, done.stderr
    assert load_stack(workdir / ".offsite").component("relay").port == port


def test_a_function_that_dies_at_start_is_reported_with_its_log(workdir: Path) -> None:
    broken = workdir / "functions" / "verify"
    broken.mkdir(parents=True)
    (broken / "main.py").write_text('raise RuntimeError("boom while importing verify")\n')
    done = dev(
        workdir,
        "up",
        "--functions",
        "verify",
        "--without",
        "bigquery,box,webhook",
        env={"OFFSITE_DEV_FUNCTIONS_DIR": str(workdir / "functions")},
    )
    assert done.returncode != 0
    first = done.stderr.splitlines()[0]
    assert first.startswith("error: verify exited during start") and "fix the error in the log below" in first
    assert "boom while importing verify" in done.stderr
    assert strays(workdir) == []
    assert not (workdir / ".offsite" / "stack.json").exists()


def _assert_failed_cleanly(workdir: Path, done: subprocess.CompletedProcess[str], cause: str, fix: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and cause in lines[0] and fix in lines[0], lines[0]
    assert "; " in lines[0], "cause; fix"
    assert strays(workdir) == []
    assert not (workdir / ".offsite" / "stack.json").exists()
