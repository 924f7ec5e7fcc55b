"""Recipe configuration: presets, --init folder detection, run-folder locking."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipe.config import RecipeError, effective_config, find_init_checkpoint, lock_run_dir, selected_steps
from recipe.settings import build_parser


def _fake_init(folder: Path, prefix: str) -> Path:
    folder.mkdir(parents=True)
    for suffix in (".index", ".data-00000-of-00001"):
        (folder / f"{prefix}{suffix}").write_bytes(b"")
    (folder / "bert_config.json").write_text("{}")
    (folder / "vocab.txt").write_text("[PAD]\n")
    return folder


def test_biobert_and_bert_folders_are_recognised(tmp_path):
    bio = find_init_checkpoint(str(_fake_init(tmp_path / "biobert_v1.0_pubmed_pmc", "biobert_model.ckpt")))
    assert bio.prefix.endswith("biobert_model.ckpt") and bio.kind == "biobert"
    bert = find_init_checkpoint(str(_fake_init(tmp_path / "cased_L-12_H-768_A-12", "bert_model.ckpt")))
    assert bert.prefix.endswith("bert_model.ckpt") and bert.kind == "bert"
    assert bert.vocab_file.endswith("vocab.txt") and bert.bert_config_file.endswith("bert_config.json")


def test_newest_of_our_own_checkpoints_is_taken(tmp_path):
    d = _fake_init(tmp_path / "run", "model.ckpt-50000")
    for step in (100000, 150000):
        (d / f"model.ckpt-{step}.index").write_bytes(b"")
    assert find_init_checkpoint(str(d)).prefix.endswith("model.ckpt-150000")


def test_init_folder_problems_are_named(tmp_path):
    with pytest.raises(RecipeError, match="not a directory"):
        find_init_checkpoint(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecipeError, match="no TensorFlow checkpoint"):
        find_init_checkpoint(str(tmp_path / "empty"))
    d = _fake_init(tmp_path / "novocab", "bert_model.ckpt")
    (d / "vocab.txt").unlink()
    with pytest.raises(RecipeError, match="vocab.txt missing"):
        find_init_checkpoint(str(d))


@pytest.mark.parametrize("corpus,steps", [("all", 150000), ("discharge", 100000)])
def test_published_presets(tmp_path, corpus, steps):
    notes = tmp_path / "NOTEEVENTS.csv.gz"
    notes.write_bytes(b"")
    init = _fake_init(tmp_path / "biobert", "biobert_model.ckpt")
    args = build_parser().parse_args(["--notes", str(notes), "--init", str(init), "--corpus", corpus])
    cfg = effective_config(args)
    assert cfg["num_train_steps"] == steps
    assert (cfg["train_batch_size"], cfg["learning_rate"], cfg["num_warmup_steps"]) == (32, 5e-5, 10000)
    assert (cfg["max_seq_length"], cfg["max_predictions_per_seq"], cfg["dupe_factor"]) == (128, 20, 5)
    assert cfg["do_lower_case"] is False and cfg["random_seed"] == 12345
    assert cfg["save_checkpoints_steps"] == 50000


def test_overrides_win(tmp_path):
    args = build_parser().parse_args(["--demo", "--num_train_steps", "7", "--num_warmup_steps", "2", "--learning_rate", "0.01",
                                      "--do_lower_case", "true"])
    cfg = effective_config(args)
    assert (cfg["num_train_steps"], cfg["learning_rate"], cfg["do_lower_case"]) == (7, 0.01, True)


def test_changed_settings_are_refused_runtime_ones_are_not(tmp_path):
    cfg = effective_config(build_parser().parse_args(["--demo"]))
    lock_run_dir(tmp_path, cfg)
    assert json.loads((tmp_path / "config.json").read_text())["num_train_steps"] == cfg["num_train_steps"]
    lock_run_dir(tmp_path, dict(cfg, num_workers=7))  # runtime-only: accepted
    lock_run_dir(tmp_path, dict(cfg, num_train_steps=2000))  # extendable: checked by the runner
    with pytest.raises(RecipeError, match=r"learning_rate: 0.0005 -> 0.001"):
        lock_run_dir(tmp_path, dict(cfg, learning_rate=0.001))


def test_bad_requests(tmp_path):
    with pytest.raises(RecipeError, match="--notes"):
        effective_config(build_parser().parse_args([]))
    with pytest.raises(RecipeError, match="no such file"):
        effective_config(build_parser().parse_args(["--notes", str(tmp_path / "nope.csv")]))
    with pytest.raises(RecipeError, match="unknown step"):
        selected_steps("sections,train")
    assert selected_steps("export,sections") == ["sections", "export"]


def test_help_has_a_line_and_a_default_for_every_option():
    parser = build_parser()
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help line"
    text = parser.format_help()
    assert "--learning_rate LEARNING_RATE" in text and "(default 5e-05; demo 0.0005)" in text
    assert "(default 150000 for --corpus all, 100000 for discharge; demo 1000)" in " ".join(text.split())
    assert "--demo only" in text  # demo-only options say so (and are refused elsewhere)


def test_fill_mask_help_exits_0_without_traceback():
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "recipe.fill_mask", "--help"], cwd=repo, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "hf_dir" in proc.stdout and proc.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "recipe.fill_mask", "/nonexistent"], cwd=repo,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr == "python -m recipe.fill_mask: error: /nonexistent: not a Hugging Face model folder (no config.json)\n"


def test_contradictory_options_exit_2_bad_values_exit_1(tmp_path):
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[2]

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "recipe", *argv, "--run_dir", str(tmp_path / "r")],
                              cwd=repo, capture_output=True, text=True, timeout=60)
    usage = run("--demo", "--notes", "x.csv")
    assert usage.returncode == 2 and usage.stderr.startswith("run_pretraining.sh: error: --demo uses synthetic")
    value = run("--demo", "--learning_rate", "0")
    assert value.returncode == 1
    assert value.stderr == "run_pretraining.sh: error: --learning_rate must be > 0, not 0.0\n"
    assert not (tmp_path / "r").exists()


def test_the_table_says_what_is_runtime_only_extendable_and_redoes_a_step():
    from recipe import settings

    assert settings.RUNTIME_ONLY == {
        "num_workers", "use_xla", "use_amp", "amp_dtype", "log_every_n_steps", "reference", "eval_data",
        "num_devices", "worker_hosts", "task_index", "iterations_per_loop", "scheduler", "dask_workers",
        "eval_preset", "eval_seeds", "eval_max_steps", "note_time_budget"}
    assert settings.EXTENDABLE == {"num_train_steps"}
    assert settings.step_settings() == {"pretrain": ("num_train_steps",),
                                        "evaluate": ("eval_preset", "eval_seeds", "eval_max_steps")}


def test_presets_layer_corpus_scratch_and_model_size():
    from recipe.settings import preset_values

    demo = preset_values("demo", "discharge")  # the demo's own values, whatever the corpus
    assert (demo["num_train_steps"], demo["dupe_factor"], demo["vocab_size"], demo["tiny_layers"]) == (1000, 3, 4000, 2)
    assert (demo["demo_notes"], demo["model_size"]) == (1000, "tiny")
    base = preset_values("scratch", " Discharge ", "base")
    assert (base["num_train_steps"], base["vocab_size"], base["tiny_hidden_size"], base["tiny_heads"]) == \
        (100000, 30000, 768, 12)
    checkpoint = preset_values("checkpoint", "radiology")
    assert checkpoint["num_train_steps"] == 150000 and checkpoint["learning_rate"] == 5e-5
    assert not {"tiny_layers", "vocab_size", "model_size", "demo_notes"} & set(checkpoint)
    assert preset_values("checkpoint", "demo")["num_train_steps"] == 150000  # a corpus is never the demo


def test_every_setting_is_one_option_and_the_parser_has_no_other_but_what_and_where():
    from recipe.settings import SETTINGS

    dests = [a.dest for a in build_parser()._actions]
    assert sorted(dests) == sorted([s.name for s in SETTINGS] + ["help", "demo", "run_dir", "steps"])
    text = " ".join(build_parser().format_help().split())
    assert "--tiny_layers TINY_LAYERS layers of a model trained from scratch (default from --model_size: " \
           "tiny 2, small 4, base 12)" in text
