"""compare_weights: identical models, perturbed copies, conversions against their source, CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from bert import checkpoint_map as cm  # noqa: E402
from bert.checkpoint_map import CheckpointError  # noqa: E402
from bert.compare_weights import compare  # noqa: E402
from bert.convert_to_huggingface import convert  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PERTURBED = {"bert/encoder/layer_1/attention/self/key/kernel": 1e-3,
             "cls/predictions/output_bias": 0.5}


@pytest.fixture(scope="module")
def golden_ckpt(golden_model: Path) -> Path:
    return golden_model / "init.ckpt"


@pytest.fixture(scope="module")
def hf(golden_ckpt: Path, tmp_path_factory) -> Path:
    return convert(golden_ckpt, tmp_path_factory.mktemp("cmp") / "hf", do_lower_case=True,
                   exact_gelu=True, verify=False)


@pytest.fixture(scope="module")
def perturbed(hf: Path, tmp_path_factory) -> Path:
    """A copy of `hf` with exactly the PERTURBED tensors changed (deterministically)."""
    from safetensors.numpy import load_file, save_file
    dest = tmp_path_factory.mktemp("cmp") / "perturbed"
    dest.mkdir()
    for f in hf.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    w = load_file(str(hf / cm.HF_WEIGHTS))
    rng = np.random.default_rng(0)
    for tf_name, scale in PERTURBED.items():
        key = cm.tf_to_hf_name(tf_name)
        w[key] = (w[key] + scale * rng.standard_normal(w[key].shape)).astype(np.float32)
        for tied, src in cm.TIED_KEYS.items():
            if src == key:
                w[tied] = w[key].copy()
    save_file(w, str(dest / cm.HF_WEIGHTS), metadata={"format": "pt"})
    return dest


def test_self_comparison_is_zero(hf: Path) -> None:
    r = compare(hf, hf, max_rel_diff=0.0)
    assert r["config"] == {} and r["tokenizer"] == {} and r["vocab"]["identical"] is True
    w = r["weights"]
    assert w["differing"] == [] and not w["only_in_ours"] and not w["only_in_theirs"]
    assert len(w["tensors"]) == 46
    assert all(t["max_abs_diff"] == 0 and t["rel_l2"] == 0 and t["cosine"] == 1 for t in w["tensors"])
    assert list(w["layers"]) == ["embeddings", "layer_0", "layer_1", "pooler", "cls"]
    assert all(g["rel_l2"] == 0 for g in w["layers"].values())
    assert r["check"]["passed"]
    t = r["text"]
    assert t["same_tokenization"] == t["sentences"] == 20
    assert t["top1_agreement"] == 1 and t["top5_agreement"] == 1
    assert t["cls_cosine"] == pytest.approx(1, abs=1e-12)
    assert t["mean_pooled_cosine"] == pytest.approx(1, abs=1e-12)
    assert t["ours"] == t["theirs"] and t["ours"]["pseudo_perplexity"] > 1


def test_conversion_against_source_is_zero(hf: Path, golden_ckpt: Path) -> None:
    r = compare(hf, golden_ckpt, no_text=True, max_rel_diff=0.0)
    assert r["check"] == {"max_rel_diff": 0.0, "passed": True, "failing": []}
    assert r["config"] == {}  # gelu_new export == what the tanh-GELU TF graph computes
    assert r["text"] == {"skipped": "--no_text"}


def test_run_folder_config_from_training_config(hf: Path, golden_ckpt: Path, tmp_path: Path) -> None:
    """A run_pretraining output folder has no bert_config.json; its training_config.json has it."""
    run = tmp_path / "run"
    run.mkdir()
    for f in golden_ckpt.parent.glob("init.ckpt.*"):
        (run / f.name.replace("init.ckpt", "model.ckpt-3")).write_bytes(f.read_bytes())
    config = json.loads((golden_ckpt.parent / "bert_config.json").read_text())
    (run / cm.TRAINING_CONFIG).write_text(json.dumps({"flags": {"do_lower_case": True}, "bert_config": config}))
    r = compare(hf, run, no_text=True, max_rel_diff=0.0)
    assert r["config"] == {} and r["check"]["passed"]
    assert r["do_lower_case"] == [True, True]
    (run / cm.TRAINING_CONFIG).unlink()
    r = compare(hf, run, no_text=True)
    assert r["config"] == {"note": "no bert_config.json (or recorded bert_config) beside theirs"}


def test_perturbed_copy_reports_exactly_those_tensors(perturbed: Path, hf: Path) -> None:
    from safetensors.numpy import load_file
    r = compare(perturbed, hf, no_text=True, max_rel_diff=0.0)
    w = r["weights"]
    assert w["differing"] == sorted(PERTURBED)
    assert r["check"]["passed"] is False and r["check"]["failing"] == sorted(PERTURBED)
    a, b = load_file(str(perturbed / cm.HF_WEIGHTS)), load_file(str(hf / cm.HF_WEIGHTS))
    for tf_name in PERTURBED:  # independent numpy reference for the statistics
        x, y = a[cm.tf_to_hf_name(tf_name)].astype(np.float64), b[cm.tf_to_hf_name(tf_name)].astype(np.float64)
        t = next(t for t in w["tensors"] if t["name"] == tf_name)
        assert t["max_abs_diff"] == pytest.approx(np.abs(x - y).max(), rel=1e-12)
        assert t["rel_l2"] == pytest.approx(np.linalg.norm(x - y) / np.linalg.norm(y), rel=1e-9)
        assert t["cosine"] == pytest.approx((x * y).sum() / np.linalg.norm(x) / np.linalg.norm(y), rel=1e-9)
    layers = w["layers"]
    assert layers["layer_1"]["n_differing"] == 1 and layers["cls"]["n_differing"] == 1
    assert layers["layer_0"]["rel_l2"] == 0 and layers["embeddings"]["rel_l2"] == 0
    assert layers["layer_1"]["rel_l2"] > 0
    loose = compare(perturbed, hf, no_text=True, max_rel_diff=10.0)
    assert loose["check"]["passed"]


def test_perturbed_copy_changes_behaviour(perturbed: Path, hf: Path) -> None:
    t = compare(perturbed, hf, text_file=None)["text"]
    assert t["top1_agreement"] < 1  # output bias moved by 0.5 std: predictions change
    assert t["ours"]["pseudo_perplexity"] != t["theirs"]["pseudo_perplexity"]
    assert t["cls_cosine"] == pytest.approx(1, abs=1e-3)  # the encoder barely moved


def test_vocab_and_casing_differences(hf: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for f in hf.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    vocab = (hf / "vocab.txt").read_text().splitlines()
    vocab[100], vocab[200] = "renamed_a", "renamed_b"
    (other / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (other / "tokenizer_config.json").unlink()  # like the published Bio_ClinicalBERT folder
    r = compare(other, hf, no_text=True)
    assert r["vocab"] == {"identical": False, "sizes": [627, 627], "differing_tokens": 2}
    assert r["do_lower_case"] == [None, True]
    assert r["effective_do_lower_case"] == [True, True]  # transformers' default lower-cases
    assert r["tokenizer"]["do_lower_case"] == [None, True]
    assert r["weights"]["differing"] == []


def test_unusable_input(tmp_path: Path, hf: Path) -> None:
    with pytest.raises(CheckpointError, match="TF checkpoint not found"):
        compare(tmp_path / "missing.ckpt", hf)


def test_cli_json_plot_and_check(perturbed: Path, hf: Path, tmp_path: Path) -> None:
    text = tmp_path / "probe.txt"
    text.write_text("the patient was given heparin .\n\nblood pressure was stable .\n")
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    r = subprocess.run([sys.executable, "-m", "bert.compare_weights", str(perturbed), str(hf),
                        f"--json={out_json}", f"--plot={out_png}", f"--text={text}", "--max_rel_diff=0"],
                       cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert "== check --max_rel_diff 0.0: FAILED (2 tensors" in r.stdout
    assert "bert/encoder/layer_1/attention/self/key/kernel: max_abs=" in r.stdout
    report = json.loads(out_json.read_text())
    assert report["weights"]["differing"] == sorted(PERTURBED)
    assert report["text"]["sentences"] == 2
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = subprocess.run([sys.executable, "-m", "bert.compare_weights", str(tmp_path / "nope"), str(hf)],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("compare_weights: error: ")
