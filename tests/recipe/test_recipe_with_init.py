"""The recipe path (not the demo): notes + an initial checkpoint folder (the golden BERT,
laid out like a downloaded BERT folder) + a reference model to compare with."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.notes import corpus_selector, iter_notes

pytestmark = pytest.mark.slow  # the whole recipe, twice (~45 s)

REPO = Path(__file__).resolve().parents[2]


def _recipe(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "recipe", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_continue_from_init_then_compare_with_reference(golden_model, tmp_path):
    golden = golden_model
    init = tmp_path / "cased_L-2_H-64"
    init.mkdir()
    for name in ("init.ckpt.index", "init.ckpt.data-00000-of-00001", "bert_config.json", "vocab.txt"):
        shutil.copy(golden / name, init / name)
    notes = tmp_path / "NOTEEVENTS.csv.gz"
    subprocess.run([sys.executable, "-m", "data_prep.synthetic_notes", "--notes", "30", "--seed", "3",
                    "--out", str(notes)], cwd=REPO, check=True, capture_output=True)
    run_dir = tmp_path / "run"
    common = ["--notes", str(notes), "--init", str(init), "--corpus", "discharge", "--run_dir", str(run_dir),
              "--num_train_steps", "4", "--num_warmup_steps", "1", "--save_checkpoints_steps", "2",
              "--train_batch_size", "4", "--max_eval_steps", "1"]
    first = _recipe(common)
    assert first.returncode == 0, first.stderr[-4000:]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["init"]["prefix"] == str(init / "init.ckpt") and config["corpus"] == "discharge"
    assert "--init_checkpoint=" + str(init / "init.ckpt") in first.stderr
    assert "vocab: nothing to do" in first.stderr  # the init folder's vocab is used
    manifest = json.loads((run_dir / "text" / "manifest.json").read_text())
    discharge = corpus_selector("discharge")
    assert manifest["totals"]["read"] == 30
    assert manifest["totals"]["selected"] == sum(discharge(n.category) for n in iter_notes(notes)) > 0
    assert [p.name for p in (run_dir / "text").glob("*.txt")] == ["discharge_summary-00000.txt"]
    assert "global_step = 4" in (run_dir / "pretrain" / "eval_results.txt").read_text()
    assert json.loads((run_dir / "summary.json").read_text())["reference_comparison"] is None

    # Same settings plus a reference: only the comparison (and the summary) run.
    second = _recipe(common + ["--reference", str(init / "init.ckpt")])
    assert second.returncode == 0, second.stderr[-4000:]
    for step in ("sections", "tfrecords", "pretrain", "export"):
        assert f"{step}: complete, skipped" in second.stderr
    assert "compare: running" in second.stderr
    ref = json.loads((run_dir / "summary.json").read_text())["reference_comparison"]
    assert ref["vocab"]["identical"] is True
    # 4 steps at lr 5e-5 moved every trainable tensor a little (the NSP bias at least)
    assert ref["differing_tensors"] > 0
    assert 0 < ref["layers"]["layer_0"]["rel_l2"] < 0.05
    assert ref["text"]["sentences"] == 20
    assert (run_dir / "compare" / "vs_reference.png").read_bytes()[:4] == b"\x89PNG"
