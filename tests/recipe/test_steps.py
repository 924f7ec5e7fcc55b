"""Recipe steps in isolation: what they pass to the stage CLIs."""
from __future__ import annotations

import pytest

from recipe import steps
from recipe.run_folder import Run
from recipe.config import RecipeError, effective_config
from recipe.settings import build_parser


def _demo_run(tmp_path):
    cfg = effective_config(build_parser().parse_args(["--demo"]))
    return Run(tmp_path, cfg)


def test_empty_text_shards_are_left_out_of_tfrecords(tmp_path, monkeypatch, capsys):
    run = _demo_run(tmp_path)
    run.text_dir.mkdir()
    (run.text_dir / "consult-00000.txt").write_text("")  # every note of it was dropped
    (run.text_dir / "ecg-00000.txt").write_text("Sinus rhythm.\n\n")
    calls = []
    monkeypatch.setattr(steps, "run_command", lambda run, args: calls.append(args))
    steps.step_tfrecords(run)
    inputs = calls[0][calls[0].index("--input_file") + 1]
    assert inputs == str(run.text_dir / "ecg-00000.txt")
    err = capsys.readouterr().err
    assert "1 empty text shard(s) skipped" in err and "consult-00000.txt" in err


def test_all_empty_text_shards_is_a_clear_error(tmp_path, monkeypatch):
    run = _demo_run(tmp_path)
    run.text_dir.mkdir()
    (run.text_dir / "consult-00000.txt").write_text("")
    monkeypatch.setattr(steps, "run_command", lambda run, args: pytest.fail("must not run"))
    with pytest.raises(RecipeError, match="every text shard is empty"):
        steps.step_tfrecords(run)


def test_summary_lists_the_evaluation_folders(tmp_path):
    from recipe.summary import evaluation_folders

    assert evaluation_folders(tmp_path / "evaluate") is None
    for path in ("evaluate/mednli/ours", "evaluate/mednli/reference", "evaluate/mednli/compare",
                 "evaluate/ncbi_disease/ours"):
        (tmp_path / path).mkdir(parents=True)
    ev = tmp_path / "evaluate"
    assert evaluation_folders(ev) == {
        "mednli": {"ours": str(ev / "mednli/ours"), "reference": str(ev / "mednli/reference"),
                   "compare": str(ev / "mednli/compare")},
        "ncbi_disease": {"ours": str(ev / "ncbi_disease/ours"), "reference": None, "compare": None}}
