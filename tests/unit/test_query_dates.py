"""``{date}`` by where it is written (shared/sql_date.py), the export's ``date:`` day, and how
``offsite config validate`` / ``show`` report both. The queries themselves run against the local
BigQuery in tests/exports/test_query_dates.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from offsite.cli import app
from shared.config import Config
from shared.messages import ExportRequest
from shared.sql_date import Placeholder, SqlDateError, placeholders, render, without_terminator
from shared.stages.fan_out import plan
from tests.unit.config_files import load

DAY = dt.date(2025, 1, 8)
runner = CliRunner()


@pytest.mark.parametrize(
    ("sql", "rendered", "uses_parameter"),
    [
        (
            "SELECT * FROM `project.dataset.products` WHERE DATE(created_at) = '{date}'",
            "SELECT * FROM `project.dataset.products` WHERE DATE(created_at) = '2025-01-08'",
            False,
        ),
        ("SELECT * FROM t WHERE d = {date}", "SELECT * FROM t WHERE d = @run_date", True),
        ('SELECT * FROM t WHERE s = "{date}"', 'SELECT * FROM t WHERE s = "2025-01-08"', False),
        ("SELECT * FROM t WHERE s LIKE '{date}%'", "SELECT * FROM t WHERE s LIKE '2025-01-08%'", False),
        ("SELECT * FROM `p.d.events_{date}`", "SELECT * FROM `p.d.events_20250108`", False),
        ("SELECT * FROM d.events_{date} WHERE x = {date}", "SELECT * FROM d.events_20250108 WHERE x = @run_date", True),
        ("SELECT '''a\n{date}''', r'\\{date}'", "SELECT '''a\n2025-01-08''', r'\\2025-01-08'", False),
        ("SELECT 'it\\'s {date}' -- {date}\n", "SELECT 'it\\'s 2025-01-08' -- 2025-01-08\n", False),
        ("SELECT 1 /* '{date} */ FROM t WHERE d={date}", "SELECT 1 /* '2025-01-08 */ FROM t WHERE d=@run_date", True),
    ],
)
def test_date_becomes_what_its_place_needs(sql: str, rendered: str, uses_parameter: bool) -> None:
    assert render(sql, DAY) == (rendered, uses_parameter)


def test_placeholders_say_their_context() -> None:
    sql = "SELECT '{date}', {date} FROM `x_{date}` # {date}"
    assert [p.context for p in placeholders(sql)] == ["string", "expression", "identifier", "comment"]
    assert placeholders("a{date}")[0] == Placeholder(1, "identifier")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM d.{date}_events", r"'\{date\}_events' at character 17: an unquoted name cannot start"),
        ("SELECT * FROM t WHERE d = '{date}", "a string literal opened at character 27 is never closed"),
        ("SELECT * FROM `p.d.t_{date} WHERE 1", "a backtick-quoted name opened at character 15 is never closed"),
        ("SELECT 1 /* {date}", "a comment opened at character 10 is never closed"),
    ],
)
def test_sql_that_cannot_take_a_date_is_refused_with_what_to_write(sql: str, message: str) -> None:
    with pytest.raises(SqlDateError, match=message):
        render(sql, DAY)


EXPORTS = """
project: p1
bucket: my-bucket
destinations:
  sftp:
    acme: {{host: h, username: u, password: x, known_hosts: "h ssh-ed25519 AAAA"}}
exports:
  - name: daily
    sql: "SELECT * FROM `p1.sales.orders` WHERE d = '{{date}}'"
{extra}
"""


def _config(tmp_path: Path, extra: str = "") -> Config:
    return load(tmp_path, EXPORTS.format(extra=extra))


@pytest.mark.parametrize(("setting", "day"), [("", 8), ("today", 8), ("yesterday", 7), ("-3", 5), ("-0", 8)])
def test_the_export_date_setting_picks_the_day_of_a_request_without_one(tmp_path: Path, setting: str, day: int) -> None:
    config = _config(tmp_path, f"    date: '{setting}'" if setting else "")
    (task,) = plan(ExportRequest(export="daily"), config, None, run_id="r1", publish_time="2025-01-08T06:00:00Z")
    assert task.date == dt.date(2025, 1, day)
    (explicit,) = plan(
        ExportRequest(export="daily", date=dt.date(2024, 2, 29)), config, None, run_id="r2", publish_time=""
    )
    assert explicit.date == dt.date(2024, 2, 29)  # a request's date is the day itself


def _validate(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["config", "validate", "-c", str(path)])
    return result.exit_code, result.output


@pytest.mark.parametrize("value", ["tomorrow", "+1", "-", "1", "-x"])
def test_a_bad_date_setting_names_the_field_and_value(tmp_path: Path, value: str) -> None:
    code, output = _validate(tmp_path, EXPORTS.format(extra=f"    date: '{value}'"))
    assert code == 2
    assert f"error: exports[0].date: {value!r} is not a day; expected today, yesterday or -N" in output


def test_validate_refuses_a_name_starting_with_the_date_and_says_what_to_write(tmp_path: Path) -> None:
    text = EXPORTS.format(extra="").replace("`p1.sales.orders` WHERE d = '{date}'", "d.{date}_orders")
    code, output = _validate(tmp_path, text)
    assert code == 2
    assert "error: exports[0].sql: '{date}_orders' at character 17: an unquoted name cannot start" in output
    assert "write it in backticks (`{date}_orders`, where {date} becomes YYYYMMDD)" in output


def test_show_prints_the_default_date(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(EXPORTS.format(extra=""))
    result = runner.invoke(app, ["config", "show", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "  date: today\n" in result.output


def test_the_warehouse_passes_the_date_parameter_only_when_the_sql_uses_it() -> None:
    from google.cloud import bigquery

    from shared.errors import PermanentError
    from shared.gcp.bigquery import DatedQuery

    quoted = DatedQuery("product_data", "SELECT * FROM t WHERE DATE(created_at) = '{date}'", DAY)
    assert quoted.parameterized() == ("SELECT * FROM t WHERE DATE(created_at) = '2025-01-08'", [])
    both = DatedQuery("d", "SELECT * FROM `p.d.ev_{date}` WHERE d = {date}", DAY)
    assert both.parameterized() == (
        "SELECT * FROM `p.d.ev_20250108` WHERE d = @run_date",
        [bigquery.ScalarQueryParameter("run_date", "DATE", DAY)],
    )
    with pytest.raises(PermanentError, match=r"^exports\.bad\.sql: '\{date\}_t' at character 17"):
        DatedQuery("bad", "SELECT * FROM d.{date}_t", DAY).parameterized()


@pytest.mark.parametrize(
    ("sql", "body"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT 1;", "SELECT 1"),
        ("SELECT 1 ; -- done\n\n", "SELECT 1"),
        ("SELECT 1;\n/* ; */ # last;\n", "SELECT 1"),
        ("SELECT ';' AS s -- x", "SELECT ';' AS s"),
        ("SELECT 1 FROM `t;`;", "SELECT 1 FROM `t;`"),
        ("SELECT '--' AS s;", "SELECT '--' AS s"),
    ],
)
def test_a_query_loses_its_closing_semicolons_and_comments_but_not_its_literals(sql: str, body: str) -> None:
    assert without_terminator(sql) == body
