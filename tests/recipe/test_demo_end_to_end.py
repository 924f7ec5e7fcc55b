"""The demo path end to end on a very small synthetic corpus (issue 6 "done when"):
every step runs, the export loads in transformers and equals its checkpoint, a rerun of
the finished pipeline does no work, and a pipeline killed during pretraining resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recipe.fill_mask import PROBES
from tests.helpers import read_records

pytestmark = pytest.mark.slow  # the demo runs end to end (~35 s) before its first test

REPO = Path(__file__).resolve().parents[2]

# A very small demo: few notes, a tiny vocab, a tiny model, a handful of steps.
SMALL = ["--demo_notes", "40", "--vocab_size", "600", "--tiny_hidden_size", "32",
         "--tiny_layers", "1", "--tiny_heads", "2", "--tiny_intermediate_size", "64",
         "--train_batch_size", "8", "--num_workers", "2", "--max_eval_steps", "2"]


def recipe(run_dir: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "recipe", "--demo", "--run_dir", str(run_dir), *SMALL, *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finished_demo(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo")
    proc = recipe(run_dir, "--num_train_steps", "12", "--num_warmup_steps", "2",
                  "--save_checkpoints_steps", "6")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return run_dir, proc


def test_every_step_ran_and_left_its_outputs(finished_demo):
    run_dir, proc = finished_demo
    manifest = json.loads((run_dir / "text" / "manifest.json").read_text())
    assert manifest["totals"]["read"] == 40
    assert manifest["totals"]["read"] == manifest["totals"]["written"] + manifest["totals"]["dropped_total"] \
        + manifest["totals"]["not_selected"]
    tfrecords = sorted((run_dir / "tfrecords").glob("*.tfrecord"))
    assert tfrecords
    eval_results = (run_dir / "pretrain" / "eval_results.txt").read_text()
    assert "global_step = 12" in eval_results and "masked_lm_accuracy" in eval_results
    hf = run_dir / "huggingface"
    config = json.loads((hf / "config.json").read_text())
    assert config["model_type"] == "bert" and config["hidden_size"] == 32
    assert json.loads((hf / "tokenizer_config.json").read_text())["do_lower_case"] is False
    check = json.loads((run_dir / "compare" / "export_vs_checkpoint.json").read_text())
    assert check["check"]["passed"] is True and check["weights"]["differing"] == []
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 12 and summary["export_matches_checkpoint"] is True
    assert summary["instances"] == sum(len(read_records(f)) for f in tfrecords) > 0
    assert (run_dir / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # fill-mask predictions were printed for the built-in probe sentences
    assert "The patient was admitted with chest [MASK]." in proc.stdout
    assert all(probe in proc.stdout for probe in PROBES)
    assert proc.stdout.count("\n    -> ") == len(PROBES)  # one line of guesses per probe


def test_rerun_of_a_finished_pipeline_does_no_work(finished_demo):
    run_dir, _ = finished_demo
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != "summary.json"
              and not p.name.endswith(".png") and p.name != ".lock"}  # .lock holds the running pid
    proc = recipe(run_dir, "--num_train_steps", "12", "--num_warmup_steps", "2",
                  "--save_checkpoints_steps", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for step in ("notes", "sections", "vocab", "tfrecords", "pretrain", "export", "compare"):
        assert f"{step}: complete, skipped" in proc.stderr
    assert "$ python -m" not in proc.stderr  # no stage command ran
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before


def test_changed_settings_are_refused(finished_demo):
    run_dir, _ = finished_demo
    proc = recipe(run_dir, "--num_train_steps", "12", "--num_warmup_steps", "2",
                  "--save_checkpoints_steps", "6", "--learning_rate", "0.001")
    assert proc.returncode == 1
    assert "learning_rate: 0.0005 -> 0.001" in proc.stderr
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr


def test_pipeline_killed_during_pretraining_resumes(tmp_path):
    run_dir = tmp_path / "killed"
    args = ["--num_train_steps", "400", "--num_warmup_steps", "10", "--save_checkpoints_steps", "25",
            "--steps", "notes,sections,vocab,tfrecords,pretrain"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "recipe", "--demo", "--run_dir", str(run_dir), *SMALL, *args]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    first = run_dir / "pretrain" / "model.ckpt-25.index"
    # TF writes the index, then (atomically) the `checkpoint` state file naming it: a kill
    # between the two may leave a half-written index, which resume rightly skips. Kill
    # once the checkpoint is complete, so that there is something to resume from.
    state = run_dir / "pretrain" / "checkpoint"
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists(), "pretraining never wrote its first checkpoint"
    assert not (run_dir / "pretrain" / "model.ckpt-400.index").exists(), "finished before the kill"
    marker = run_dir / ".steps" / "pretrain.json"  # "started", never "done"
    assert not marker.exists() or json.loads(marker.read_text())["status"] == "started"

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "tfrecords: complete, skipped" in again.stderr
    assert "Resuming from" in again.stderr
    eval_results = (run_dir / "pretrain" / "eval_results.txt").read_text()
    assert "global_step = 400" in eval_results
