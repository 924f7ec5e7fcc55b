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


def test_stale_temps_of_every_writer_are_removed_user_files_kept(tmp_path):
    """What a killed run leaves: utils.atomic temps (text shards, TFRecords, the HF export
    folder), TensorFlow's checkpoint temps, run_pretraining's write probe."""
    from utils.atomic import remove_stale_temps

    temps = [".discharge_summary-00000.txt.tmp-ab12_x", "tfrecords/.ecg-00000.tfrecord.tmp-zz9",
             ".huggingface.tmp-q1w2/config.json", ".huggingface.old-123/config.json",
             "pretrain/model.ckpt-4.index.tempstate1234567890",
             "pretrain/model.ckpt-4.data-00000-of-00001.tempstate98765",
             "pretrain/model.ckpt-4_temp/part-00000-of-00001.data-00000-of-00001",
             "pretrain/model.ckpt-8_temp_0123456789abcdef0123456789abcdef/part-00000-of-00001.index",
             "pretrain/checkpoint.tmp0123456789abcdef0123456789abcdef", "pretrain/.write-test-k2j3h4"]
    kept = ["text/discharge_summary-00000.txt", "pretrain/model.ckpt-4.index", "pretrain/checkpoint",
            "notes.tmp", ".lock", "my_temp/file", "pretrain/events.out.tfevents.1.host"]
    for name in temps + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    removed = remove_stale_temps(tmp_path, recursive=True)
    assert sorted(str(p.relative_to(tmp_path)) for p in removed) == sorted([
        ".discharge_summary-00000.txt.tmp-ab12_x", "tfrecords/.ecg-00000.tfrecord.tmp-zz9",
        ".huggingface.tmp-q1w2", ".huggingface.old-123",  # whole folders
        "pretrain/model.ckpt-4.index.tempstate1234567890",
        "pretrain/model.ckpt-4.data-00000-of-00001.tempstate98765",
        "pretrain/model.ckpt-4_temp", "pretrain/model.ckpt-8_temp_0123456789abcdef0123456789abcdef",
        "pretrain/checkpoint.tmp0123456789abcdef0123456789abcdef", "pretrain/.write-test-k2j3h4"])
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(kept)
