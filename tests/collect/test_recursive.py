"""Recursive collect jobs on a real OpenSSH sshd: files in subfolders keep their relative path
at the destination, globs match that path, symlinks are not followed, depth is bounded, the
post-action works per file, and bad settings are config errors naming the field."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.collect.copy import copy_file
from shared.collect.messages import CollectFile
from shared.config import Config, from_dict
from shared.errors import ConfigError, RejectedInput
from tests.collect.conftest import Collect

TREE = {
    "top.csv": b"top\n",
    "2026/01/jan.csv": b"jan\n",
    "2026/02/feb.csv": b"feb\n",
    "2026/02/notes.txt": b"not a csv\n",
    "tmp/partial.csv": b"excluded by its folder\n",
    "a/b/c/deep.csv": b"three folders down\n",
}


def make_tree(collect: Collect, tree: dict[str, bytes]) -> None:
    for name, data in tree.items():
        folder = collect.partner_dir
        for part in Path(name).parent.parts:
            folder = folder / part
            if not folder.exists():
                folder.mkdir()
                os.chown(folder, collect.user.uid, collect.user.gid)  # the partner may move and delete
        collect.write(name, data)


def test_subfolders_are_collected_with_their_relative_paths(collect: Collect, tmp_path: Path) -> None:
    make_tree(collect, TREE)
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    (outside / "secret" / "x.csv").write_bytes(b"never\n")
    (outside / "link.csv").write_bytes(b"never\n")
    os.symlink(outside / "secret", collect.partner_dir / "linked_dir")
    os.symlink(outside / "link.csv", collect.partner_dir / "2026" / "link.csv")
    job = {"include": ["*.csv"], "exclude": ["tmp/*"], "recursive": True, "max_depth": 2}

    flat = collect.config({"include": ["*.csv"]})  # the default: only the directory's own files
    assert collect.run(flat) == ["collected"]
    assert collect.memory_files() == {f"{collect.folder}/top.csv": b"top\n"}

    config = collect.config(job)
    assert sorted(collect.run(config)) == ["collected", "collected"]  # top.csv is collected already
    assert collect.memory_files() == {
        f"{collect.folder}/top.csv": b"top\n",
        f"{collect.folder}/2026/01/jan.csv": b"jan\n",
        f"{collect.folder}/2026/02/feb.csv": b"feb\n",
    }  # not: notes.txt (glob), tmp/ (exclude), a/b/c/ (3 levels > max_depth 2), the symlinks
    assert collect.run(config) == []

    deeper = collect.config({**job, "max_depth": 3})
    assert collect.run(deeper) == ["collected"]
    assert collect.memory_files()[f"{collect.folder}/a/b/c/deep.csv"] == b"three folders down\n"


@pytest.mark.parametrize("action", ["move", "delete"])
def test_the_post_action_works_per_file_in_subfolders(
    collect: Collect, user_folder: Callable[[str], Path], action: str
) -> None:
    processed = user_folder("processed")
    tree = {k: v for k, v in TREE.items() if k.endswith(".csv") and not k.startswith(("tmp/", "a/"))}
    make_tree(collect, tree)
    config = collect.config(
        {"recursive": True, "include": ["*.csv"], "post_action": action, "processed_dir": str(processed)}
    )
    assert collect.run(config) == ["collected"] * 3
    left = sorted(str(p.relative_to(collect.partner_dir)) for p in collect.partner_dir.rglob("*"))
    assert left == ["2026", "2026/01", "2026/02"]  # the files, not the folders
    moved = {str(p.relative_to(processed)): p.read_bytes() for p in processed.rglob("*") if p.is_file()}
    assert moved == (tree if action == "move" else {})


def test_a_nested_file_message_for_a_flat_job_is_rejected(collect: Collect) -> None:
    make_tree(collect, {"sub/a.csv": b"a\n"})
    config = collect.config()
    message = CollectFile(collect=collect.name, run_id="r1", name="sub/a.csv", size=2, mtime=0)
    with pytest.raises(RejectedInput, match=r"'sub/a\.csv' is 1 folder level\(s\) below .* \(it is not recursive\)"):
        copy_file(config, message)
    with pytest.raises(RejectedInput, match=r"is not a file path relative to the collected directory"):
        CollectFile.from_json(
            b'{"collect": "x", "run_id": "r1", "name": "sub/../../etc/passwd", "size": 1, "mtime": 0}'
        )


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"max_depth": 3}, r"collect\.jobs\[0\]\.max_depth: only applies with recursive: true"),
        ({"recursive": True, "max_depth": 0}, r"collect\.jobs\[0\]\.max_depth: 0 must be at least 1"),
        ({"recursive": True, "max_depth": 101}, r"collect\.jobs\[0\]\.max_depth: 101 must be at most 100"),
        ({"recursive": "sometimes"}, r"collect\.jobs\[0\]\.recursive: "),
        (
            {"recursive": True, "post_action": "move", "processed_dir": "{dir}/done"},
            r"collect\.jobs\[0\]\.processed_dir: '.*/done' is inside the collected directory .* moved files "
            r"would be collected again",
        ),
    ],
)
def test_bad_recursive_settings_are_config_errors_naming_the_field(
    collect: Collect, job: dict[str, object], message: str
) -> None:
    fields = {k: v.format(dir=collect.partner_dir) if isinstance(v, str) else v for k, v in job.items()}
    with pytest.raises(ConfigError, match=message):
        from_dict(Config, collect.raw(fields))
