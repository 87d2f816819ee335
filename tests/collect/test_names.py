"""Partner files whose names collect cannot copy as they are, on a real OpenSSH sshd: a name with a
backslash or one that is not UTF-8 is skipped and reported, and names that differ only in case
are held when a destination ignores case (Box); every other file of the job is still collected."""

from __future__ import annotations

from shared.destinations.factory import opened
from shared.ids import Status
from shared.messages import VerifyResult
from tests.collect.conftest import Collect


def last_result(collect: Collect) -> VerifyResult:
    return collect.results()[-1]


def test_a_backslash_named_file_is_skipped_and_reported_every_run_while_the_others_are_collected(
    collect: Collect,
) -> None:
    collect.write("good.csv", b"a,b\n1,2\n")
    collect.write("reports\\2026-01-01.csv", b"x\n")
    config = collect.config()
    assert collect.run(config) == ["collected"]
    assert list(collect.memory_files()) == [f"{collect.folder}/good.csv"]
    result = last_result(collect)
    assert (result.status, result.files_expected, result.files_present) == (Status.INCOMPLETE, 2, 1)
    assert result.missing == ["reports\\2026-01-01.csv"]
    assert result.reason is not None and "backslash" in result.reason and "renamed at the partner" in result.reason

    collect.write("next.csv", b"c\n")  # the next day: the job is not stuck on the odd file
    assert collect.run(config) == ["collected"]
    assert sorted(collect.memory_files()) == [f"{collect.folder}/good.csv", f"{collect.folder}/next.csv"]
    assert last_result(collect).missing == ["reports\\2026-01-01.csv"]


def test_a_name_that_is_not_utf8_is_listed_skipped_and_reported(collect: Collect) -> None:
    collect.write("good.csv", b"a,b\n1,2\n")
    collect.write_bytes_named(b"caf\xe9.csv", b"x\n")
    config = collect.config({"include": ["*.csv"]})
    assert collect.run(config) == ["collected"]
    assert list(collect.memory_files()) == [f"{collect.folder}/good.csv"]
    result = last_result(collect)
    assert (result.status, result.files_expected, result.missing) == (Status.INCOMPLETE, 2, ["caf\\xe9.csv"])
    assert result.reason is not None and "not UTF-8" in result.reason


def test_a_folder_named_in_latin1_does_not_stop_a_recursive_listing(collect: Collect) -> None:
    collect.write("top.csv", b"top\n")
    collect.write_bytes_named(b"inside.csv", b"in\n", folder=b"r\xe9sum\xe9s")
    config = collect.config({"recursive": True, "max_depth": 2})
    assert collect.run(config) == ["collected"]
    assert list(collect.memory_files()) == [f"{collect.folder}/top.csv"]
    assert last_result(collect).missing == ["r\\xe9sum\\xe9s/inside.csv"]


def test_names_differing_only_in_case_are_held_at_box_not_copied_over_each_other(collect: Collect) -> None:
    """Box compares names case-insensitively: copying both would leave one file there while both
    are reported collected and deleted at the source. Both are held, reported, left in place."""
    upper, lower = b"upper,case\n1,1\n", b"lower,case\n2,2,2\n"
    collect.write("Report.csv", upper)
    collect.write("report.csv", lower)
    collect.write("other.csv", b"fine\n")
    config = collect.config({"destinations": ["box"], "post_action": "delete"})
    assert collect.run(config) == ["collected"]
    with opened("box", config) as box:
        assert [f.path for f in box.list(collect.folder)] == [f"{collect.folder}/other.csv"]
    assert sorted(p.name for p in collect.partner_dir.iterdir()) == ["Report.csv", "report.csv"]
    result = last_result(collect)
    assert (result.status, result.files_expected, result.files_present) == (Status.INCOMPLETE, 3, 1)
    assert result.missing == ["Report.csv", "report.csv"]
    assert result.reason is not None and "same name but for case as report.csv; box would keep one" in result.reason

    (collect.partner_dir / "report.csv").unlink()  # the partner renames or removes one
    assert collect.run(config) == ["collected"]  # held across listings, so stable: taken at once
    with opened("box", config) as box:
        found = {f.path: f.size for f in box.list(collect.folder)}
    assert found == {f"{collect.folder}/other.csv": 5, f"{collect.folder}/Report.csv": len(upper)}
    assert last_result(collect).status == Status.IN_SYNC


def test_a_new_file_clashing_with_one_collected_earlier_is_held(collect: Collect) -> None:
    """``Report.csv`` collected yesterday and kept at the partner; today ``report.csv`` appears.
    Copied to Box it would replace yesterday's file (a new version of it): it is held instead."""
    collect.write("Report.csv", b"yesterday\n")
    config = collect.config({"destinations": ["box"]})
    assert collect.run(config) == ["collected"]
    collect.write("report.csv", b"today, other bytes\n")
    assert collect.run(config) == []
    with opened("box", config) as box:
        assert [(f.path, f.size) for f in box.list(collect.folder)] == [(f"{collect.folder}/Report.csv", 10)]
    result = last_result(collect)
    assert (result.status, result.missing) == (Status.INCOMPLETE, ["report.csv"])


def test_printable_shows_the_bytes_of_a_name_that_is_not_utf8() -> None:
    from shared.collect.messages import printable

    listed = b"caf\xe9.csv".decode("utf-8", "surrogateescape")  # as the listing keeps it
    assert printable(listed) == "caf\\xe9.csv"
    assert printable("café.csv") == "café.csv"
    assert printable("\ud800") == "\\ud800"  # a lone surrogate from a message: shown, never raised
