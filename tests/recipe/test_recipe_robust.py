"""The recipe as a user runs it (issue 9), end to end on a tiny model trained from scratch on
synthetic notes with a given vocab: a second command on the same folder is refused at
once while the first ends normally; Ctrl-C with 2 workers leaves no process and the rerun
resumes to the same bytes; raising num_train_steps continues training; a changed notes
file is not skipped; relative paths are the caller's."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import process_table

pytestmark = pytest.mark.slow  # whole recipe runs, most sharing one ~30 s run

REPO = Path(__file__).resolve().parents[2]
TINY = ["--model_size", "tiny", "--tiny_hidden_size", "32", "--tiny_layers", "1", "--tiny_heads", "2",
        "--tiny_intermediate_size", "64", "--train_batch_size", "8", "--max_eval_steps", "2",
        "--num_train_steps", "8", "--num_warmup_steps", "2", "--save_checkpoints_steps", "4",
        "--num_workers", "2"]


def _env(cache: Path) -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", HF_HUB_OFFLINE="1",
                CLINICALBERT_CACHE_DIR=str(cache))


def _recipe_cmd(notes: Path, vocab: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "recipe", "--notes", str(notes), "--init", "scratch", "--vocab", str(vocab),
            "--run_dir", str(run_dir), *TINY, *extra]


def _synthetic_notes(path: Path, n: int, seed: int) -> Path:
    subprocess.run([sys.executable, "-m", "data_prep.synthetic_notes", "--notes", str(n), "--seed", str(seed),
                    "--out", str(path)], cwd=REPO, check=True, capture_output=True)
    return path


def _files(folder: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob(pattern))}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Notes (300 synthetic) and a 600-token WordPiece vocab built from them (as a user's --vocab)."""
    root = tmp_path_factory.mktemp("inputs")
    notes = _synthetic_notes(root / "NOTEEVENTS.csv.gz", 300, 5)
    vocab = root / "vocab.txt"
    subprocess.run([sys.executable, "-m", "bert.build_vocab", "--input_file", str(notes),
                    "--output_file", str(vocab), "--vocab_size", "600"], cwd=REPO, check=True,
                   capture_output=True, env=_env(root / "cache"))
    return notes, vocab, root / "cache"


@pytest.fixture(scope="module")
def shared_run(inputs, tmp_path_factory):
    """One finished scratch run; while it ran, the same command on the same folder was tried."""
    notes, vocab, cache = inputs
    run_dir = tmp_path_factory.mktemp("scratch") / "run"
    cmd = _recipe_cmd(notes, vocab, run_dir)
    first = subprocess.Popen(cmd, cwd=REPO, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / ".steps" / "notes.json").exists() and first.poll() is None:
        assert time.monotonic() < deadline, "the first run never started its steps"
        time.sleep(0.05)
    second = subprocess.run(cmd, cwd=REPO, env=_env(cache), capture_output=True, text=True, timeout=120)
    first_still_running = first.poll() is None
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-4000:]
    return run_dir, first.pid, second, first_still_running, out + err


def test_scratch_with_a_given_vocab_trains_and_exports(shared_run, inputs):
    run_dir, *_ = shared_run
    _, vocab, _ = inputs
    config = json.loads((run_dir / "config.json").read_text())
    assert config["init_kind"] == "scratch" and config["vocab"] == str(vocab) and config["model_size"] == "tiny"
    assert (run_dir / "vocab" / "vocab.txt").read_bytes() == vocab.read_bytes()
    bert_config = json.loads((run_dir / "vocab" / "bert_config.json").read_text())
    n_vocab = len(vocab.read_text().splitlines())
    assert (bert_config["vocab_size"], bert_config["hidden_size"], bert_config["num_hidden_layers"]) == (n_vocab, 32, 1)
    assert "global_step = 8" in (run_dir / "pretrain" / "eval_results.txt").read_text()
    assert json.loads((run_dir / "summary.json").read_text())["export_matches_checkpoint"] is True


def test_a_second_command_on_the_same_folder_is_refused_at_once(shared_run):
    run_dir, first_pid, second, first_still_running, first_log = shared_run
    assert first_still_running, "the refused command must return while the first run is still working"
    assert second.returncode == 1
    assert second.stderr.strip() == (f"run_pretraining.sh: error: {run_dir} is in use by another run "
                                     f"(pid {first_pid}); wait for it to end, or give another folder")
    assert "complete, skipped" not in first_log  # the first run was undisturbed: every step ran


def _start_and_wait_for_section_workers(cmd: list[str], run_dir: Path, cache: Path):
    """Start the recipe; return (process, stage group) once sections runs with both workers."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline and proc.poll() is None, "never saw the sections stage's workers"
        ps = process_table()
        stage = [p.pgid for p in ps.values() if "section_split" in p.cmdline and str(run_dir) in p.cmdline]
        if stage and sum(1 for p in ps.values() if p.pgid == stage[0]) >= 3:
            return proc, stage[0]
        time.sleep(0.02)


def _left_after(seconds: float, group: int, run_dir: Path) -> list[tuple[int, str]]:
    """Processes of the run (in the stage's group, or naming the run folder) still alive
    `seconds` after now; any found are killed so that a failing test leaves none."""
    deadline = time.monotonic() + seconds
    while True:
        left = [(pid, p.cmdline) for pid, p in process_table().items()
                if (p.pgid == group or str(run_dir) in p.cmdline) and pid != os.getpid()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid, _ in left:
        os.kill(pid, signal.SIGKILL)
    return left


def test_sigkill_of_the_recipe_leaves_no_stage_or_worker(inputs, tmp_path):
    """The OOM killer's case: nothing can be forwarded, the stage and its pool still die."""
    notes, vocab, cache = inputs
    run_dir = tmp_path / "run"
    proc, group = _start_and_wait_for_section_workers(
        _recipe_cmd(notes, vocab, run_dir, "--steps", "notes,sections"), run_dir, cache)
    proc.kill()
    proc.wait()
    assert _left_after(5, group, run_dir) == []


def test_sigint_with_two_workers_leaves_no_process_and_the_rerun_resumes_to_the_same_bytes(
        shared_run, inputs, tmp_path):
    notes, vocab, cache = inputs
    run_dir = tmp_path / "run"
    cmd = _recipe_cmd(notes, vocab, run_dir, "--steps", "notes,sections,vocab,tfrecords")
    proc, group = _start_and_wait_for_section_workers(cmd, run_dir, cache)
    os.kill(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=30)[1]
    left = _left_after(5, group, run_dir)
    assert left == [], f"processes of the run still alive 5 s after Ctrl-C: {left}"
    assert proc.returncode == 130
    assert "interrupted (SIGINT) during step sections" in err
    assert not (run_dir / ".steps" / "sections.json").exists() or \
        json.loads((run_dir / ".steps" / "sections.json").read_text())["status"] == "started"

    again = subprocess.run(cmd, cwd=REPO, env=_env(cache), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    first_run = shared_run[0]
    assert _files(run_dir / "text", "*.txt") == _files(first_run / "text", "*.txt")
    assert _files(run_dir / "tfrecords", "*.tfrecord") == _files(first_run / "tfrecords", "*.tfrecord")
    assert len(_files(run_dir / "tfrecords", "*.tfrecord")) >= 10


def test_raising_num_train_steps_continues_training(shared_run, inputs, tmp_path):
    notes, vocab, cache = inputs
    run_dir = tmp_path / "run"
    shutil.copytree(shared_run[0], run_dir)
    lower = subprocess.run(_recipe_cmd(notes, vocab, run_dir, "--num_train_steps", "6"), cwd=REPO,
                           env=_env(cache), capture_output=True, text=True, timeout=120)
    assert lower.returncode == 1
    assert "--num_train_steps 6 is below the step already trained" in lower.stderr and "(8)" in lower.stderr
    # Up to pretraining (the steps after it re-running is shown with fake stages in test_runner).
    longer = subprocess.run(_recipe_cmd(notes, vocab, run_dir, "--num_train_steps", "12", "--steps",
                                        "notes,sections,vocab,tfrecords,pretrain"), cwd=REPO,
                            env=_env(cache), capture_output=True, text=True, timeout=600)
    assert longer.returncode == 0, longer.stderr[-4000:]
    for step in ("sections", "vocab", "tfrecords"):
        assert f"{step}: complete, skipped" in longer.stderr
    assert "num_train_steps 8 -> 12: pretraining continues from step 8" in longer.stderr
    assert "Resuming from" in longer.stderr and "from step 8 to 12" in longer.stderr
    assert "global_step = 12" in (run_dir / "pretrain" / "eval_results.txt").read_text()
    assert json.loads((run_dir / "config.json").read_text())["num_train_steps"] == 12


def test_a_changed_notes_file_is_not_skipped(inputs, tmp_path):
    _, vocab, cache = inputs
    notes = _synthetic_notes(tmp_path / "notes.csv.gz", 20, 1)
    run_dir = tmp_path / "run"
    cmd = _recipe_cmd(notes, vocab, run_dir, "--steps", "sections", "--num_workers", "1")
    assert subprocess.run(cmd, cwd=REPO, env=_env(cache), capture_output=True, timeout=300).returncode == 0
    _synthetic_notes(notes, 30, 2)
    again = subprocess.run(cmd, cwd=REPO, env=_env(cache), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "input changed since step sections ran (notes: " in again.stderr
    assert "complete, skipped" not in again.stderr
    assert json.loads((run_dir / "text" / "manifest.json").read_text())["totals"]["read"] == 30


def test_relative_paths_from_another_directory(inputs, tmp_path):
    """`cd probe && .../run_pretraining.sh --notes n.csv.gz --run_dir r`: both are probe's."""
    notes, vocab, cache = inputs
    probe = tmp_path / "probe"
    probe.mkdir()
    shutil.copy(notes, probe / "n.csv.gz")
    shutil.copy(vocab, probe / "v.txt")
    proc = subprocess.run(["bash", str(REPO / "run_pretraining.sh"), "--notes", "n.csv.gz", "--init", "scratch",
                           "--vocab", "v.txt", "--run_dir", "r", "--steps", "notes"], cwd=probe,
                          env=_env(cache), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((probe / "r" / "config.json").read_text())
    assert config["notes"] == str(probe / "n.csv.gz") and config["vocab"] == str(probe / "v.txt")
    assert not (REPO / "r").exists()


def test_evaluate_step_fine_tunes_both_models_and_compares(shared_run, inputs, tmp_path):
    """--eval_data on a finished run: the export and the --reference (here the export's own
    copy) are fine-tuned on a MedNLI-format folder with the same seeds, then compared."""
    from downstream_tasks.synthetic import generate

    notes, vocab, cache = inputs
    run_dir = tmp_path / "run"
    shutil.copytree(shared_run[0], run_dir)
    reference = tmp_path / "published"
    shutil.copytree(run_dir / "huggingface", reference)
    eval_data = tmp_path / "eval"
    shutil.copytree(generate(tmp_path / "synthetic", seed=3, mednli_sizes={"train": 16, "dev": 8, "test": 8})
                    / "mednli", eval_data / "mednli")
    res = subprocess.run(_recipe_cmd(notes, vocab, run_dir, "--eval_data", str(eval_data), "--reference",
                                     str(reference), "--eval_seeds", "1,2", "--eval_max_steps", "2"),
                         cwd=REPO, env=_env(cache), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    for step in ("sections", "tfrecords", "pretrain", "export"):
        assert f"{step}: complete, skipped" in res.stderr
    task = run_dir / "evaluate" / "mednli"
    ours = json.loads((task / "ours" / "results.json").read_text())
    ref = json.loads((task / "reference" / "results.json").read_text())
    assert ours["task"] == ref["task"] == "mednli"
    assert [r["seed"] for r in ours["runs"]] == [r["seed"] for r in ref["runs"]] == [1, 2]
    assert ours["settings"]["max_steps"] == ref["settings"]["max_steps"] == 2
    assert (ours["model"]["path"], ref["model"]["path"]) == (str(run_dir / "huggingface"), str(reference))
    # The same weights, seeds and data: the same scores, so the verdict is "equivalent".
    assert [r["test"]["accuracy"] for r in ours["runs"]] == [r["test"]["accuracy"] for r in ref["runs"]]
    [row] = json.loads((task / "compare" / "comparison.json").read_text())["tasks"]
    assert (row["name"], row["seeds"], row["difference"], row["verdict"]) == ("mednli", [1, 2], 0.0, "equivalent")
    assert row["ci95"] == [0.0, 0.0]
    assert "mednli" in (task / "compare" / "comparison.md").read_text()

