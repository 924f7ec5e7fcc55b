"""utils.atomic: the final name appears only on success, with normal permissions."""
from __future__ import annotations

import os
import stat

import pytest

from utils.atomic import atomic_open, write_json_atomic


def test_success_renames_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_open(target, "w") as f:
        f.write("hello")
        assert not target.exists()
    assert target.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failure_leaves_nothing_and_keeps_old_file(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as f:
            f.write("partial")
            raise RuntimeError("killed")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_paths_all_or_nothing(tmp_path):
    from utils.atomic import atomic_paths

    targets = [tmp_path / "a.rec", tmp_path / "b.rec"]
    with pytest.raises(OSError):
        with atomic_paths(targets) as temps:
            temps[0].write_text("half")
            raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []
    with atomic_paths(targets) as temps:
        for t, text in zip(temps, ("A", "B")):
            t.write_text(text)
    assert [p.read_text() for p in targets] == ["A", "B"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.rec", "b.rec"]


def test_atomic_dir_replaces_whole_folder_or_nothing(tmp_path):
    from utils.atomic import atomic_dir

    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("v1")
    assert [p.name for p in out.iterdir()] == ["config.json"]
    with pytest.raises(ValueError):
        with atomic_dir(out) as tmp:
            (tmp / "config.json").write_text("v2")
            raise ValueError("verification failed")
    assert (out / "config.json").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary left
    with atomic_dir(out) as tmp:
        (tmp / "weights").write_text("v3")
    assert [p.name for p in out.iterdir()] == ["weights"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
