"""Object names a destination would not keep as they are: skipped and reported, never sharing a
copy with another object, never written into the reserved versions folder."""

from __future__ import annotations

from collections.abc import Callable

from tests.mirror.conftest import DESTINATIONS, MirrorStack, sha1


def test_a_name_that_normalizes_to_another_objects_path_is_not_mirrored(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """``a\\b.txt`` would be the path of ``a/b.txt``: one copy for two objects, and deleting
    the alias would delete the live object's copy."""
    m = mirror_factory(delete="mirror")
    m.finalized(m.put("a/b.txt", b"live object"))
    m.finalized(m.put("a\\b.txt", b"other bytes"))
    for destination in DESTINATIONS:
        assert m.copies(destination) == {"a/b.txt": sha1(b"live object")}, destination
    for result in m.reconcile(fix=False):
        assert result.status == "in_sync", result.reason
        assert "1 object(s) not mirrored, their names cannot be kept: 'a\\\\b.txt'" in result.reason

    m.deleted(m.remove("a\\b.txt"))
    for destination in DESTINATIONS:
        assert m.copies(destination) == {"a/b.txt": sha1(b"live object")}, destination


def test_names_in_the_versions_folder_in_any_spelling_are_not_mirrored(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    m = mirror_factory(delete="mirror", retention={"daily": 7})
    m.finalized(m.put("kept.txt", b"kept"))
    for name in ("_offsite_versions\\2020-01-01\\kept.txt", "_Offsite_Versions/2020-01-01/kept.txt"):
        m.finalized(m.put(name, b"not a version"))
    for destination in DESTINATIONS:
        assert m.copies(destination) == {"kept.txt": sha1(b"kept")}, destination


def test_case_twins_at_box_converge_after_a_delete(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """Box folds case: ``Report.txt`` and ``report.txt`` are one file there. Deleting one removes
    that file (a delete event does not list the bucket for other spellings); the reconcile then
    delivers the survivor's bytes again."""
    m = mirror_factory(delete="mirror", destinations=["box"])
    m.finalized(m.put("Report.txt", b"upper"))
    m.finalized(m.put("report.txt", b"lower"))
    m.deleted(m.remove("Report.txt"))
    m.reconcile()
    m.continuations()  # the re-delivery the reconcile requested
    assert list(m.copies("box").values()) == [sha1(b"lower")]


def test_a_name_ending_with_the_sftp_partial_suffix_is_mirrored_to_box_only(
    mirror_factory: Callable[..., MirrorStack],
) -> None:
    """SFTP names its uploads in progress ``NAME.partial`` and refuses a file of such a name (the
    next put of NAME would take it for a leftover): the reconcile lists it as not mirrored there,
    instead of reporting it missing and re-delivering it, refused, at every reconcile."""
    m = mirror_factory(delete="mirror")
    m.finalized(m.put("data.csv", b"whole"))
    m.finalized(m.put("data.csv.partial", b"a file of that name"))
    assert m.copies("sftp:local") == {"data.csv": sha1(b"whole")}
    assert m.copies("box") == {"data.csv": sha1(b"whole"), "data.csv.partial": sha1(b"a file of that name")}
    for result in m.reconcile():
        assert result.status == "in_sync", (result.destination, result.reason)
        noted = "1 object(s) not mirrored, their names cannot be kept: 'data.csv.partial'" in (result.reason or "")
        assert noted == (result.destination == "sftp:local"), (result.destination, result.reason)
    assert m.continuations() == 0  # nothing re-delivered
