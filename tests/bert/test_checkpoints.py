"""bert.checkpoints: which checkpoint a run resumes from (the project's one folder rule,
checkpoint_map.resolve_checkpoint, plus skipping damaged ones) and --init_checkpoint."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from bert import checkpoints
from bert.checkpoint_map import CheckpointError, write_tf_checkpoint
from utils.cli import UserError


def _save(folder, step: int) -> str:
    prefix = str(folder / f"model.ckpt-{step}")
    write_tf_checkpoint({"global_step": np.int64(step),
                         "bert/w": np.full((64, 64), step, np.float32)}, prefix)
    return prefix


def _state(folder, step: int) -> None:
    (folder / "checkpoint").write_text(f'model_checkpoint_path: "model.ckpt-{step}"\n'
                                       f'all_model_checkpoint_paths: "model.ckpt-{step}"\n')


def _damage(prefix: str) -> None:
    data = prefix + ".data-00000-of-00001"
    with open(data, "r+b") as f:
        f.truncate(100)


def test_same_rule_as_the_exporter_state_file_first(tmp_path):
    assert checkpoints.latest_good_checkpoint(str(tmp_path)) is None  # nothing: fresh start
    assert checkpoints.latest_good_checkpoint(str(tmp_path / "absent")) is None
    _save(tmp_path, 3)
    six = _save(tmp_path, 6)
    assert checkpoints.latest_good_checkpoint(str(tmp_path)) == six  # highest N
    _state(tmp_path, 3)
    assert checkpoints.latest_good_checkpoint(str(tmp_path)).endswith("model.ckpt-3")
    assert checkpoints.global_step_of(str(tmp_path / "model.ckpt-3")) == 3


def test_damaged_newest_is_skipped_with_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    three, six = _save(tmp_path, 3), _save(tmp_path, 6)
    _state(tmp_path, 6)
    _damage(six)
    assert checkpoints.latest_good_checkpoint(str(tmp_path)) == three
    assert f"skipped the unreadable checkpoint {six}" in caplog.text
    assert f"resuming from {three}" in caplog.text
    _damage(three)
    with pytest.raises(CheckpointError) as info:
        checkpoints.latest_good_checkpoint(str(tmp_path))
    msg = str(info.value)
    assert isinstance(info.value, UserError) and "\n" not in msg
    assert msg.startswith(f"{six}: checkpoint unreadable (") and "no older readable" in msg


def test_state_file_naming_a_deleted_checkpoint_falls_back(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    three = _save(tmp_path, 3)
    _state(tmp_path, 9)  # model.ckpt-9 was deleted by hand
    assert checkpoints.latest_good_checkpoint(str(tmp_path)) == three
    assert "model.ckpt-9" in caplog.text


def test_init_checkpoint_folder_prefix_and_damage(tmp_path):
    folder = tmp_path / "biobert"
    folder.mkdir()
    prefix = str(folder / "biobert_model.ckpt")
    write_tf_checkpoint({"bert/w": np.zeros((64, 64), np.float32)}, prefix)
    assert checkpoints.resolve_init_checkpoint(str(folder)) == prefix  # the single *.ckpt
    assert checkpoints.resolve_init_checkpoint(prefix) == prefix
    with pytest.raises(CheckpointError, match=r"--init_checkpoint=\S+nope: \S+nope: TF "
                                              r"checkpoint not found"):
        checkpoints.resolve_init_checkpoint(str(tmp_path / "nope"))
    _damage(prefix)
    with pytest.raises(CheckpointError, match=rf"^--init_checkpoint={prefix}: checkpoint "
                                              r"unreadable \("):
        checkpoints.resolve_init_checkpoint(prefix)


def test_unwritable_output_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CheckpointError, match=rf"^--output_dir={blocker}/out: not writable "
                                              r"\(Not a directory\)$"):
        checkpoints.check_writable(str(blocker / "out"))
