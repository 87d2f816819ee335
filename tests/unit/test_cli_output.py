"""offsite/cli/output.py and progress.py: plain text off a terminal, JSON for scripts, progress rows."""

from __future__ import annotations

import json

import pytest

from devstack.demo_summary import Delivery, Progress
from offsite.cli import output
from offsite.cli.progress import Board, Row, demo_rows
from shared.messages import VerifyResult


class Captured:
    """What the test printed on stdout (pytest's capture is not a terminal, like a pipe)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().out


@pytest.fixture
def stdout(capsys: pytest.CaptureFixture[str]) -> Captured:
    return Captured(capsys)


def test_a_table_off_a_terminal_is_plain_aligned_text(stdout: Captured) -> None:
    long_name = "x" * 300
    output.print_table(
        ("RUN", "SOURCE", "FILES", "NOTE"),
        [["r1", "sales.orders", 1234567, None], ["r2", long_name, 3, "[bold]not markup[/]"]],
        right={"FILES"},
    )
    text = stdout.getvalue()
    assert "\x1b" not in text  # no ANSI codes
    lines = text.splitlines()
    assert len(lines) == 3  # header + one line per row: nothing wrapped, however long
    assert all(line == line.rstrip() for line in lines)  # no padding after the last cell
    assert lines[0].split() == ["RUN", "SOURCE", "FILES", "NOTE"]
    assert lines[1].split() == ["r1", "sales.orders", "1,234,567", "-"]
    assert lines[2].split() == ["r2", long_name, "3", "[bold]not", "markup[/]"]
    assert lines[1].index("1,234,567") + len("1,234,567") == lines[2].index(" 3 ") + 2  # right-aligned


def test_json_is_plain_sorted_and_parseable(stdout: Captured) -> None:
    output.print_json({"b": 1, "a": [1, 2], "when": __import__("datetime").date(2025, 1, 8)})
    text = stdout.getvalue()
    assert "\x1b" not in text and text.index('"a"') < text.index('"b"')
    assert json.loads(text) == {"a": [1, 2], "b": 1, "when": "2025-01-08"}


def test_human_bytes() -> None:
    assert [output.human_bytes(n) for n in (None, 999, 16_200, 3_000_000)] == ["-", "999 B", "16.2 KB", "3.0 MB"]


def test_board_off_a_terminal_prints_each_changed_row_once(stdout: Captured) -> None:
    waiting = Row("r1", "sales.orders", "deliver", "box", "delivering")
    done = Row("r1", "sales.orders", "verify", "box", "in_sync", "2/2", 16_200, 8_100.0)
    with Board("test") as board:
        assert not board.is_live
        board.update([waiting])
        board.update([waiting])
        board.log("a note")
        board.update([done])
    assert stdout.getvalue().splitlines() == [
        "r1  sales.orders  deliver → box: delivering",
        "a note",
        "r1  sales.orders  verify → box: in_sync  files 2/2  16.2 KB  8.1 KB/s",
    ]


def verified(destination: str, *, files: int, size: int, seconds: float) -> VerifyResult:
    """Run r1 found in sync at ``destination`` by SHA-1: every one of ``files`` files there."""
    return VerifyResult(
        status="in_sync",
        run_id="r1",
        destination=destination,
        check="sha1",
        files_present=files,
        files_expected=files,
        bytes_present=size,
        duration_s=seconds,
    )


def test_demo_rows_follow_a_delivery_from_export_to_verify() -> None:
    result = verified("sftp:local", files=2, size=4000, seconds=2.0)
    state = Progress(
        deliveries=[
            Delivery("r1", "sales.orders", "2025-01-08", "sftp:local", result, 2, 4000),
            Delivery("r1", "sales.orders", "2025-01-08", "box", None, 2, 4000),
            Delivery("r2", "sales.products", "2025-01-08", "box"),
        ],
        missing_runs=["r3"],
    )
    rows = [(r.run_id, r.source, r.stage, r.destination, r.status, r.files, r.bytes, r.rate) for r in demo_rows(state)]
    assert rows == [
        ("r1", "sales.orders", "export", None, "done", "2", 4000, None),
        ("r1", "sales.orders", "deliver", "box", "delivering", None, None, None),
        ("r1", "sales.orders", "verify", "sftp:local", "in_sync", "2/2", 4000, 2000.0),
        ("r2", "sales.products", "export", None, "exporting", None, None, None),
        ("r2", "sales.products", "deliver", "box", "waiting", None, None, None),
        ("r3", "-", "fan_out", None, "waiting", None, None, None),
    ]


class FakeTerminal(__import__("io").StringIO):
    def isatty(self) -> bool:
        return True


def test_board_on_a_terminal_draws_a_live_table(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setenv("COLUMNS", "120")
    with Board("offsite demo") as board:
        assert board.is_live
        board.log("published")
        board.update([Row("r1", "sales.orders", "verify", "box", "in_sync", "2/2", 16_200, 8_100.0)])
    drawn = terminal.getvalue()
    assert "\x1b[" in drawn  # styled, redrawn in place
    for text in (
        "offsite demo",
        "published",
        "RUN",
        "DESTINATION",
        "r1",
        "sales.orders",
        "in_sync",
        "16.2 KB",
        "8.1 KB/s",
    ):
        assert text in drawn


def test_demo_json_outcome_lists_every_delivery() -> None:
    from offsite.cli.demo import outcome

    state = Progress(
        deliveries=[
            Delivery(
                "r1",
                "sales.orders",
                "2025-01-08",
                "sftp:local",
                verified("sftp:local", files=1, size=10, seconds=1.5),
                1,
                10,
            ),
            Delivery("r1", "sales.orders", "2025-01-08", "box", verified("box", files=1, size=10, seconds=1.5), 1, 10),
        ]
    )
    doc = json.loads(json.dumps(outcome(state)))
    assert doc["all_in_sync"] is True and doc["run_failures"] == {} and doc["missing_runs"] == []
    assert [(d["destination"], d["status"], d["check"], d["files_present"]) for d in doc["deliveries"]] == [
        ("box", "in_sync", "sha1", 1),
        ("sftp:local", "in_sync", "sha1", 1),
    ]
    pending = Progress(deliveries=[Delivery("r2", "sales.products", "2025-01-08", "box")])
    [waiting] = outcome(pending)["deliveries"]
    assert waiting["status"] is None and outcome(pending)["all_in_sync"] is False
