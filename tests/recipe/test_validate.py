"""Everything is validated before any work (issue 9): a typo in any step's setting, a bad
--init folder, --reference or --eval_data costs seconds, one line, and writes nothing."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recipe.__main__ import main
from recipe.config import RecipeError

REPO = Path(__file__).resolve().parents[2]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY = {"vocab_size": 12, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 16, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64, "type_vocab_size": 2,
        "initializer_range": 0.02}
HEADER = "ROW_ID,SUBJECT_ID,HADM_ID,CHARTDATE,CHARTTIME,STORETIME,CATEGORY,DESCRIPTION,CGID,ISERROR,TEXT\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICALBERT_CACHE_DIR", str(tmp_path / "cache"))


def write_notes(path: Path, categories: list[str]) -> Path:
    rows = "".join(f'{i},1,2,2100-01-01,,,{c},Report,,,"Patient is stable."\n' for i, c in enumerate(categories))
    with gzip.open(path, "wt") as f:
        f.write(HEADER + rows)
    return path


def write_init(folder: Path, config: dict = TINY, vocab_size: int | None = None,
               shapes: dict | None = None) -> Path:
    """A BERT folder (checkpoint, bert_config.json, vocab.txt) for a tiny config."""
    from bert.checkpoint_map import expected_shapes, write_tf_checkpoint

    folder.mkdir(parents=True)
    weights = {n: np.zeros(s, np.float32) for n, s in (shapes or expected_shapes(config)).items()}
    write_tf_checkpoint(weights, folder / "bert_model.ckpt")
    (folder / "bert_config.json").write_text(json.dumps(config))
    n = vocab_size or config["vocab_size"]
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + [f"w{i}" for i in range(n - 5)]) + "\n")
    return folder


@pytest.fixture
def notes(tmp_path) -> Path:
    return write_notes(tmp_path / "NOTEEVENTS.csv.gz", ["Nursing/other", "Radiology", "Physician ", "Nursing"])


@pytest.fixture
def vocab(tmp_path) -> Path:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(SPECIALS + ["the", "patient"]) + "\n")
    return path


def refused(tmp_path: Path, *argv: str) -> str:
    """Run the recipe in-process; it must refuse and create no run folder. (--steps notes:
    should validation wrongly pass, the command ends at once, then the test fails.)"""
    run_dir = tmp_path / "run"
    with pytest.raises(RecipeError) as info:
        main([*argv, "--run_dir", str(run_dir), "--steps", "notes"])
    assert not run_dir.exists(), "a refused command must not create the run folder"
    return str(info.value)


@pytest.mark.parametrize("flags,message", [
    (["--learning_rate", "-1"], "--learning_rate must be > 0"),
    (["--train_batch_size", "0"], "--train_batch_size must be >= 1"),
    (["--masked_lm_prob", "0"], "--masked_lm_prob must be in (0, 1]"),
    (["--masked_lm_prob", "1.5"], "--masked_lm_prob must be in (0, 1]"),
    (["--num_train_steps", "100", "--num_warmup_steps", "200"], "--num_warmup_steps 200 must be between 0"),
    (["--model_size", "base", "--max_seq_length", "1024"], "max_position_embeddings (512)"),
    (["--max_predictions_per_seq", "0"], "--max_predictions_per_seq 0 must be between 1"),
    (["--max_predictions_per_seq", "200"], "max_seq_length (128)"),
    (["--num_workers", "0"], "--num_workers must be >= 1"),
    (["--dupe_factor", "0"], "--dupe_factor must be >= 1"),
    (["--short_seq_prob", "-0.1"], "--short_seq_prob must be in [0, 1]"),
    (["--amp_dtype", "fp8"], "--amp_dtype must be bfloat16 or float16"),
    (["--tiny_hidden_size", "30", "--tiny_heads", "4"], "must be a multiple of --tiny_heads"),
    (["--corpus", "Nursng"], "--corpus Nursng: no note of category 'Nursng'"),
    (["--spacy_model", "en_core_sci_nope"], "--spacy_model en_core_sci_nope: not installed"),
    (["--dask_workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not both"),
    (["--worker_hosts", "a:1,b"], "'b' is not host:port"),
    (["--task_index", "0"], "--task_index needs --worker_hosts"),
    (["--worker_hosts", "a:1,b:2", "--task_index", "2"], "between 0 and 1"),
    (["--iterations_per_loop", "0"], "--iterations_per_loop must be >= 1"),
    (["--note_time_budget", "0"], "--note_time_budget must be > 0 seconds"),
    (["--eval_max_steps", "3"], "--eval_max_steps applies only with --eval_data DIR"),
])
def test_a_typo_in_any_step_is_refused_before_step_one(tmp_path, notes, vocab, flags, message):
    msg = refused(tmp_path, "--notes", str(notes), "--init", "scratch", "--vocab", str(vocab), *flags)
    assert message in msg


def test_unknown_corpus_lists_the_categories_the_file_holds(tmp_path, notes, vocab):
    msg = refused(tmp_path, "--notes", str(notes), "--init", "scratch", "--vocab", str(vocab),
                  "--corpus", "Radiology,Nursng")
    assert "'Nursng'" in msg and "'Radiology'" not in msg.split("its categories")[0]
    assert "its categories: 'Nursing/other' (1), 'Radiology' (1), 'Physician' (1), 'Nursing' (1)" in msg
    # the categories were counted once and cached with the file's fingerprint
    cache = json.loads((Path(os.environ["CLINICALBERT_CACHE_DIR"]) / "file_facts.json").read_text())
    assert [entry["categories"] for entry in cache.values()] == [
        {"Nursing/other": 1, "Radiology": 1, "Physician ": 1, "Nursing": 1}]
    discharge = refused(tmp_path, "--notes", str(notes), "--init", "scratch", "--vocab", str(vocab),
                        "--corpus", "discharge")
    assert "no note of category 'Discharge summary'" in discharge


def test_the_demo_corpus_is_checked_against_the_synthetic_categories(tmp_path):
    assert "'Nursng'" in refused(tmp_path, "--demo", "--corpus", "Nursng")


def test_a_bad_notes_header_is_refused(tmp_path, vocab):
    bad = tmp_path / "notes.csv"
    bad.write_text("ROW_ID,CATEGORY,BODY\n1,Radiology,x\n")
    msg = refused(tmp_path, "--notes", str(bad), "--init", "scratch", "--vocab", str(vocab))
    assert "missing column(s) text" in msg and str(bad) in msg


def test_demo_only_and_scratch_only_options_are_refused_elsewhere(tmp_path, notes, vocab):
    init = write_init(tmp_path / "bert")
    assert "--demo_notes applies only with --demo" in refused(
        tmp_path, "--notes", str(notes), "--init", "scratch", "--demo_notes", "5")
    assert "--vocab applies only to a model trained from scratch" in refused(
        tmp_path, "--notes", str(notes), "--init", str(init), "--vocab", str(vocab))
    assert "--tiny_layers applies only" in refused(tmp_path, "--notes", str(notes), "--init", str(init),
                                                    "--tiny_layers", "3")
    assert "--tiny_layers overrides the tiny model's size only" in refused(
        tmp_path, "--notes", str(notes), "--init", "scratch", "--model_size", "base", "--tiny_layers", "3")
    assert "do not combine" in refused(tmp_path, "--demo", "--vocab", str(vocab))


def test_scratch_vocab_without_special_tokens_is_refused(tmp_path, notes):
    bad = tmp_path / "words.txt"
    bad.write_text("[PAD]\n[UNK]\nthe\n")
    assert "lacks the special token(s) [CLS], [SEP], [MASK]" in refused(
        tmp_path, "--notes", str(notes), "--init", "scratch", "--vocab", str(bad))


# --------------------------------------------------------------------------- --init

def test_a_good_init_folder_passes_and_its_config_bounds_the_settings(tmp_path, notes):
    init = write_init(tmp_path / "bert")
    # max_position_embeddings of this config is 64: the published 128 is too long for it
    assert "between 5 and the model's max_position_embeddings (64)" in refused(
        tmp_path, "--notes", str(notes), "--init", str(init))
    from recipe.config import effective_config
    from recipe.settings import build_parser
    from recipe.validate import validate
    cfg = effective_config(build_parser().parse_args(["--notes", str(notes), "--init", str(init),
                                                      "--max_seq_length", "64", "--max_predictions_per_seq", "10"]))
    assert validate(cfg) == TINY


def test_init_with_mismatched_shapes_is_one_line(tmp_path, notes):
    from bert.checkpoint_map import expected_shapes
    shapes = expected_shapes(dict(TINY, intermediate_size=32))
    init = write_init(tmp_path / "bert", shapes=shapes)
    msg = refused(tmp_path, "--notes", str(notes), "--init", str(init), "--max_seq_length", "64")
    assert "intermediate/dense/bias has shape [32] but the config implies [16]" in msg
    assert "\n" not in msg


def test_init_with_a_vocab_of_another_size_is_refused(tmp_path, notes):
    init = write_init(tmp_path / "bert", vocab_size=15)
    msg = refused(tmp_path, "--notes", str(notes), "--init", str(init), "--max_seq_length", "64")
    assert "vocab has 15 tokens but the config says vocab_size 12" in msg


def test_init_with_a_corrupt_or_truncated_checkpoint_is_refused(tmp_path, notes):
    init = write_init(tmp_path / "bert")
    data = init / "bert_model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])
    msg = refused(tmp_path, "--notes", str(notes), "--init", str(init), "--max_seq_length", "64")
    assert "is truncated" in msg and "download the checkpoint again" in msg
    (init / "bert_model.ckpt.index").write_bytes(b"garbage" * 10)
    msg = refused(tmp_path, "--notes", str(notes), "--init", str(init), "--max_seq_length", "64")
    assert "cannot read TF checkpoint" in msg and "\n" not in msg


def test_corrupt_init_from_the_command_line_is_one_line_no_traceback(tmp_path, notes):
    init = write_init(tmp_path / "bert")
    (init / "bert_model.ckpt.index").write_bytes(b"garbage" * 10)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "recipe", "--notes", str(notes), "--init", str(init),
                           "--run_dir", str(tmp_path / "run")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("run_pretraining.sh: error: --init ")
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- --reference, --eval_data

def test_reference_problems_are_refused(tmp_path, notes, vocab):
    base = ["--notes", str(notes), "--init", "scratch", "--vocab", str(vocab)]
    assert "no such file or folder" in refused(tmp_path, *base, "--reference", str(tmp_path / "nope"))
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(dict(TINY, model_type="bert")))
    (hf / "pytorch_model.bin").write_bytes(b"pickle")
    assert "only pytorch_model.bin (pickled" in refused(tmp_path, *base, "--reference", str(hf))
    (hf / "model.safetensors").write_bytes(b"not safetensors")
    assert "cannot read its weights" in refused(tmp_path, *base, "--reference", str(hf))


def test_eval_data_layout_is_checked_up_front(tmp_path, notes, vocab):
    base = ["--notes", str(notes), "--init", "scratch", "--vocab", str(vocab)]
    data = tmp_path / "eval"
    (data / "mednli").mkdir(parents=True)
    (data / "mednli" / "mli_train_v1.jsonl").write_text("{}\n")
    assert "mednli: mli_dev_v1.jsonl, mli_test_v1.jsonl missing" in refused(tmp_path, *base, "--eval_data", str(data))
    for name in ("mli_dev_v1.jsonl", "mli_test_v1.jsonl"):
        (data / "mednli" / name).write_text("{}\n")
    (data / "ncbi_disease").mkdir()
    (data / "ncbi_disease" / "train.tsv").write_text("a\tO\n")
    assert "ncbi_disease: dev.tsv, test.tsv missing" in refused(tmp_path, *base, "--eval_data", str(data))
    from recipe.validate import downstream_available, eval_tasks
    for name in ("dev.tsv", "test.tsv"):
        (data / "ncbi_disease" / name).write_text("a\tO\n")
    assert [(n, k) for n, k, _ in eval_tasks(str(data))] == [("mednli", "mednli"), ("ncbi_disease", "ner")]
    if not downstream_available():
        assert "needs the downstream_tasks package" in refused(tmp_path, *base, "--eval_data", str(data))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no task folder in it" in refused(tmp_path, *base, "--eval_data", str(empty))


# --------------------------------------------------------------------------- paths

def test_relative_paths_are_the_callers(tmp_path, notes, vocab, monkeypatch):
    from recipe.config import default_run_dir, effective_config
    from recipe.settings import build_parser
    probe = tmp_path / "probe"
    probe.mkdir()
    monkeypatch.chdir(probe)
    cfg = effective_config(build_parser().parse_args(["--notes", "../NOTEEVENTS.csv.gz", "--init", "scratch",
                                                      "--vocab", "../vocab.txt", "--reference", "../ref"]))
    assert cfg["notes"] == str(notes) and cfg["vocab"] == str(vocab) and cfg["reference"] == str(tmp_path / "ref")
    assert default_run_dir(cfg) == probe / "runs" / "all-scratch"
    with pytest.raises(RecipeError, match=r"--notes nope.csv: no such file \(.*/probe/nope.csv\)"):
        effective_config(build_parser().parse_args(["--notes", "nope.csv", "--init", "scratch"]))


def test_a_hugging_face_reference_is_checked_shape_wise(tmp_path):
    from safetensors.numpy import save_file

    from bert.checkpoint_map import expected_shapes, tf_to_hf_weights
    from recipe.validate import validate_reference

    hf = tmp_path / "Bio_ClinicalBERT"
    hf.mkdir()
    weights = {n: np.zeros(s, np.float32) for n, s in expected_shapes(TINY).items()}
    save_file(tf_to_hf_weights(weights), str(hf / "model.safetensors"))
    (hf / "config.json").write_text(json.dumps(dict(TINY, model_type="bert", architectures=["BertForPreTraining"])))
    validate_reference(str(hf))  # loadable: no error
    (hf / "config.json").write_text(json.dumps(dict(TINY, model_type="bert", intermediate_size=32)))
    with pytest.raises(RecipeError, match=r"--reference .*has shape \[16\] but the config implies \[32\]"):
        validate_reference(str(hf))


def test_read_only_parent_of_the_run_folder_is_one_line(readonly_dir):
    """Nothing can be created: one line naming the folder and the OS error, exit 1."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run([sys.executable, "-m", "recipe", "--demo", "--run_dir", str(readonly_dir / "run"),
                          "--steps", "notes"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"run_pretraining.sh: error: cannot create the run folder: {readonly_dir / 'run'}: "
        + ("Operation not permitted" if os.geteuid() == 0 else "Permission denied")]
    assert list(readonly_dir.iterdir()) == []
