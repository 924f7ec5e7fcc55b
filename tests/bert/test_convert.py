"""TF checkpoint <-> Hugging Face conversion: golden outputs, transformers loading, round trips,
a BERT-Base-shaped checkpoint, and bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # never reach a hub, whatever transformers tries

from bert import checkpoint_map as cm  # noqa: E402
from bert.checkpoint_map import CheckpointError  # noqa: E402
from bert.convert_from_huggingface import convert_from_hf  # noqa: E402
from bert.convert_to_huggingface import convert  # noqa: E402
from tests.helpers import read_batch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def golden_hf(golden_model: Path, tmp_path_factory) -> Path:
    """The golden checkpoint exported with --exact_gelu, self-verified against the TF graph."""
    out = tmp_path_factory.mktemp("hf") / "golden_hf"
    return convert(golden_model / "init.ckpt", out, do_lower_case=True, exact_gelu=True, verify=True)


def _golden_batch0(golden_model: Path) -> dict[str, np.ndarray]:
    """The golden model's first batch: its first 8 records (batch size 8, file order)."""
    batch = read_batch(golden_model / "input.tfrecord", 8)
    return {k: batch[k] for k in ("input_ids", "input_mask", "segment_ids", "masked_lm_positions")}


def _same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return set(a) == set(b) and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
                                    and a[k].tobytes() == b[k].tobytes() for k in a)


# ----------------------------------------------------------------------------- golden export

def test_export_files(golden_hf: Path, golden_model: Path) -> None:
    config = json.loads((golden_hf / "config.json").read_text())
    tf_config = json.loads((golden_model / "bert_config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertForPreTraining"]
    assert config["hidden_act"] == "gelu_new"  # --exact_gelu
    assert config["layer_norm_eps"] == 1e-12 and config["pad_token_id"] == 0
    for k in cm.GOOGLE_CONFIG_KEYS:
        if k != "hidden_act":
            assert config[k] == tf_config[k], k
    tok = json.loads((golden_hf / "tokenizer_config.json").read_text())
    assert tok["do_lower_case"] is True and tok["model_max_length"] == 512
    assert tok["tokenizer_class"] == "BertTokenizer"
    assert json.loads((golden_hf / "special_tokens_map.json").read_text())["mask_token"] == "[MASK]"
    assert (golden_hf / "vocab.txt").read_bytes() == (golden_model / "vocab.txt").read_bytes()
    assert not list(golden_hf.parent.glob(".*tmp-*"))  # no temp folder left behind


def test_export_loads_in_transformers(golden_hf: Path, golden_model: Path) -> None:
    from transformers import (AutoModel, AutoModelForMaskedLM, AutoTokenizer, BertForPreTraining,
                              pipeline)
    _, info = BertForPreTraining.from_pretrained(golden_hf, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    for cls in (AutoModel, AutoModelForMaskedLM):  # heads they lack are "unexpected", none missing
        _, info = cls.from_pretrained(golden_hf, output_loading_info=True)
        assert not info["missing_keys"] and not info["mismatched_keys"], cls
    tokenizer = AutoTokenizer.from_pretrained(golden_hf)
    assert tokenizer.do_lower_case is True and tokenizer.model_max_length == 512
    # Google's tokenizer is the reference for the tokenization the model was trained with.
    from bert import tokenization
    ref = tokenization.FullTokenizer(str(golden_model / "vocab.txt"), do_lower_case=True)
    text = "Patient given Lasix 40 mg IV; HEPARIN drip started."
    assert tokenizer.tokenize(text) == ref.tokenize(text)
    fill = pipeline("fill-mask", model=str(golden_hf), tokenizer=tokenizer)
    result = fill("the patient was given [MASK] .")
    assert len(result) == 5 and all(r["token_str"].strip() for r in result)
    assert [r["score"] for r in result] == sorted((r["score"] for r in result), reverse=True)


def test_export_matches_golden_tf_outputs(golden_hf: Path, golden_model: Path) -> None:
    import torch
    from transformers import BertForPreTraining
    ref = np.load(golden_model / "golden_outputs.npz")
    b = _golden_batch0(golden_model)
    model = BertForPreTraining.from_pretrained(golden_hf).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor(b["input_ids"]), attention_mask=torch.tensor(b["input_mask"]),
                    token_type_ids=torch.tensor(b["segment_ids"]), output_hidden_states=True)
        seq = out.hidden_states[-1]
        pooled = model.bert.pooler(seq)
    pos = b["masked_lm_positions"]
    logits = out.prediction_logits.numpy()[np.arange(8)[:, None], pos].reshape(-1, logits_dim(out))
    mlm_logp = torch.log_softmax(torch.from_numpy(logits), -1).numpy()
    nsp_logp = torch.log_softmax(out.seq_relationship_logits, -1).numpy()
    np.testing.assert_allclose(seq.numpy(), ref["seq_out"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(pooled.numpy(), ref["pooled"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(mlm_logp, ref["mlm_logp"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(nsp_logp, ref["nsp_logp"], atol=1e-4, rtol=0)


def logits_dim(out) -> int:
    return out.prediction_logits.shape[-1]


def test_cased_export_keeps_case(golden_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer
    out = convert(golden_model / "init.ckpt", tmp_path / "cased", do_lower_case=False, verify=False)
    assert json.loads((out / "config.json").read_text())["hidden_act"] == "gelu"  # as the TF config
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.do_lower_case is False
    assert tokenizer.tokenize("Patient") != tokenizer.tokenize("patient")


# ----------------------------------------------------------------------------- round trips

def test_round_trip_tf_hf_tf(golden_hf: Path, golden_model: Path, tmp_path: Path) -> None:
    tf_dir = convert_from_hf(golden_hf, tmp_path / "tf")
    assert _same_weights(cm.read_tf_checkpoint(cm.resolve_checkpoint(tf_dir)),
                         cm.read_tf_checkpoint(str(golden_model / "init.ckpt")))
    assert json.loads((tf_dir / "bert_config.json").read_text()) == \
        json.loads((golden_model / "bert_config.json").read_text())
    assert json.loads((tf_dir / cm.TRAINING_CONFIG).read_text())["do_lower_case"] is True
    assert (tf_dir / "vocab.txt").read_bytes() == (golden_model / "vocab.txt").read_bytes()


def test_round_trip_hf_tf_hf(golden_hf: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file
    tf_dir = convert_from_hf(golden_hf, tmp_path / "tf")
    # casing comes from training_config.json written by the reverse converter: no flag needed
    hf2 = convert(tf_dir, tmp_path / "hf2", exact_gelu=True, verify=False)
    assert _same_weights(load_file(str(golden_hf / cm.HF_WEIGHTS)), load_file(str(hf2 / cm.HF_WEIGHTS)))
    for name in ("config.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        assert (hf2 / name).read_bytes() == (golden_hf / name).read_bytes(), name


# ----------------------------------------------------------------------------- BERT-Base shape

def test_bert_base_shaped_checkpoint(cased_vocab: Path, tmp_path: Path) -> None:
    """A 768-wide, 28996-token checkpoint (2 layers to stay fast) built with numpy."""
    from transformers import BertConfig, BertForPreTraining
    config = {"vocab_size": 28996, "hidden_size": 768, "num_hidden_layers": 2, "num_attention_heads": 12,
              "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
              "type_vocab_size": 2, "initializer_range": 0.02}
    rng = np.random.default_rng(0)
    weights = {n: (rng.standard_normal(s) * 0.02).astype(np.float32)
               for n, s in cm.expected_shapes(config).items()}
    weights["global_step"] = np.array(7, np.int64)  # bookkeeping the export must skip
    weights["bert/pooler/dense/kernel/adam_m"] = np.zeros((768, 768), np.float32)
    ckpt = tmp_path / "run"
    ckpt.mkdir()
    cm.write_tf_checkpoint(weights, ckpt / "model.ckpt-7")
    (ckpt / "bert_config.json").write_text(json.dumps(config))
    (ckpt / "vocab.txt").write_bytes(cased_vocab.read_bytes())
    (ckpt / cm.TRAINING_CONFIG).write_text(json.dumps({"do_lower_case": False}))
    out = convert(ckpt, tmp_path / "hf", verify=True)  # folder -> newest checkpoint; casing recorded
    from safetensors.numpy import load_file
    exported = load_file(str(out / cm.HF_WEIGHTS))
    expected = {k: tuple(v.shape) for k, v in
                BertForPreTraining(BertConfig(**config)).state_dict().items()}
    assert {k: v.shape for k, v in exported.items()} == expected
    k = "bert/encoder/layer_1/intermediate/dense/kernel"
    np.testing.assert_array_equal(exported["bert.encoder.layer.1.intermediate.dense.weight"], weights[k].T)
    np.testing.assert_array_equal(exported["cls.predictions.decoder.weight"],
                                  weights["bert/embeddings/word_embeddings"])
    assert json.loads((out / "tokenizer_config.json").read_text())["do_lower_case"] is False


def test_resolve_checkpoint_folder(tmp_path: Path) -> None:
    w = {"bert/pooler/dense/bias": np.zeros(4, np.float32)}
    for step in (5, 10, 9):
        cm.write_tf_checkpoint(w, tmp_path / f"model.ckpt-{step}")
    assert cm.resolve_checkpoint(tmp_path) == str(tmp_path / "model.ckpt-10")  # highest N, not 9
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-5"\n')
    assert cm.resolve_checkpoint(tmp_path) == str(tmp_path / "model.ckpt-5")  # the state file wins
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/run/model.ckpt-9"\n')
    assert cm.resolve_checkpoint(tmp_path) == str(tmp_path / "model.ckpt-9")  # folder was moved


# ----------------------------------------------------------------------------- reverse variants

def _hf_copy(golden_hf: Path, dest: Path, keep=lambda k: True, rename=lambda k: k,
             architectures=("BertForPreTraining",)) -> Path:
    from safetensors.numpy import load_file, save_file
    dest.mkdir()
    w = load_file(str(golden_hf / cm.HF_WEIGHTS))
    save_file({rename(k): v for k, v in w.items() if keep(k)}, str(dest / cm.HF_WEIGHTS))
    config = json.loads((golden_hf / "config.json").read_text())
    config["architectures"] = list(architectures)
    (dest / "config.json").write_text(json.dumps(config))
    (dest / "vocab.txt").write_bytes((golden_hf / "vocab.txt").read_bytes())
    return dest


def test_reverse_bert_model_layout_warns_missing_heads(golden_hf: Path, tmp_path: Path, capsys) -> None:
    src = _hf_copy(golden_hf, tmp_path / "bm", keep=lambda k: k.startswith("bert."),
                   rename=lambda k: k[len("bert."):], architectures=("BertModel",))
    with pytest.raises(CheckpointError, match="no pretraining head variable.*cls/predictions/output_bias"):
        convert_from_hf(src, tmp_path / "strict", require_pretraining_heads=True)
    assert not (tmp_path / "strict").exists()
    out = convert_from_hf(src, tmp_path / "tf")
    err = capsys.readouterr().err
    assert "cls/seq_relationship/output_weights" in err and "casing not recorded" in err
    got = cm.read_tf_checkpoint(cm.resolve_checkpoint(out))
    full = cm.read_tf_checkpoint(cm.resolve_checkpoint(convert_from_hf(golden_hf, tmp_path / "full")))
    assert _same_weights(got, {k: v for k, v in full.items() if k.startswith("bert/")})
    assert not (out / cm.TRAINING_CONFIG).exists()


def test_reverse_masked_lm_layout(golden_hf: Path, tmp_path: Path, capsys) -> None:
    src = _hf_copy(golden_hf, tmp_path / "mlm", keep=lambda k: "pooler" not in k and "seq_rel" not in k,
                   architectures=("BertForMaskedLM",))
    out = convert_from_hf(src, tmp_path / "tf")
    err = capsys.readouterr().err
    assert "bert/pooler/dense/kernel" in err and "cls/seq_relationship/output_bias" in err
    assert "cls/predictions/output_bias" in cm.read_tf_checkpoint(cm.resolve_checkpoint(out))


def test_reverse_pickle_only_needs_flag(golden_hf: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.numpy import load_file
    src = _hf_copy(golden_hf, tmp_path / "pt")
    # pytorch-pretrained-bert era names, as in the published clinical pickles: LayerNorm.gamma/beta
    old_name = lambda k: k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    state = {old_name(k): torch.from_numpy(v) for k, v in load_file(str(src / cm.HF_WEIGHTS)).items()}
    assert "bert.embeddings.LayerNorm.gamma" in state
    (src / cm.HF_WEIGHTS).unlink()
    torch.save(state, src / cm.HF_PICKLE_WEIGHTS)
    with pytest.raises(CheckpointError, match="only pickled weights.*allow_pickle_i_trust_this_code"):
        convert_from_hf(src, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    out = convert_from_hf(src, tmp_path / "tf", allow_pickle=True)
    assert _same_weights(cm.read_tf_checkpoint(cm.resolve_checkpoint(out)),
                         cm.hf_to_tf_weights(load_file(str(golden_hf / cm.HF_WEIGHTS))))


# ----------------------------------------------------------------------------- bad input

def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope/model.ckpt-3: TF checkpoint not found"):
        convert(tmp_path / "nope" / "model.ckpt-3", tmp_path / "out", do_lower_case=True)
    with pytest.raises(CheckpointError, match="no TF checkpoint found in this directory"):
        convert(tmp_path, tmp_path / "out", do_lower_case=True)
    assert not (tmp_path / "out").exists()


def _golden_copy(golden_model: Path, dest: Path, **config_changes) -> Path:
    dest.mkdir()
    for f in golden_model.glob("init.ckpt.*"):
        (dest / f.name).write_bytes(f.read_bytes())
    config = json.loads((golden_model / "bert_config.json").read_text())
    config.update(config_changes)
    (dest / "bert_config.json").write_text(json.dumps(config))
    (dest / "vocab.txt").write_bytes((golden_model / "vocab.txt").read_bytes())
    return dest


def test_shape_mismatch_names_tensor(golden_model: Path, tmp_path: Path) -> None:
    src = _golden_copy(golden_model, tmp_path / "c", intermediate_size=256)
    with pytest.raises(CheckpointError, match=r"tensor bert/encoder/layer_0/intermediate/dense/bias has "
                                              r"shape \[128\] but the config implies \[256\]"):
        convert(src / "init.ckpt", tmp_path / "out", do_lower_case=True)
    assert not (tmp_path / "out").exists()


def test_vocab_size_mismatch(golden_model: Path, tmp_path: Path) -> None:
    src = _golden_copy(golden_model, tmp_path / "c")
    with open(src / "vocab.txt", "a") as f:
        f.write("extra\n")
    with pytest.raises(CheckpointError, match=r"vocab.txt: vocab has 628 tokens but the config says "
                                              r"vocab_size 627"):
        convert(src / "init.ckpt", tmp_path / "out", do_lower_case=True)


def test_casing_must_be_stated(golden_model: Path, tmp_path: Path) -> None:
    src = _golden_copy(golden_model, tmp_path / "c")
    with pytest.raises(CheckpointError, match="casing unknown: pass --do_lower_case"):
        convert(src, tmp_path / "out")


def test_casing_from_run_pretraining_training_config(golden_model: Path, tmp_path: Path) -> None:
    src = _golden_copy(golden_model, tmp_path / "c")
    (src / cm.TRAINING_CONFIG).write_text(json.dumps({"flags": {"do_lower_case": False}, "bert_config": {}}))
    out = convert(src, tmp_path / "out", verify=False)
    assert json.loads((out / "tokenizer_config.json").read_text())["do_lower_case"] is False
    (src / cm.TRAINING_CONFIG).write_text(json.dumps({"flags": {"do_lower_case": None}}))
    with pytest.raises(CheckpointError, match="casing unknown"):
        convert(src, tmp_path / "out2", verify=False)


def test_refuses_to_overwrite(golden_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not empty.*--overwrite"):
        convert(golden_model / "init.ckpt", out, do_lower_case=True, verify=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    convert(golden_model / "init.ckpt", out, do_lower_case=True, verify=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"])


def test_failed_verification_leaves_nothing(golden_model: Path, tmp_path: Path) -> None:
    # erf gelu vs the tanh graph at an impossible tolerance must fail, and remove the export
    with pytest.raises(CheckpointError, match="verification against the TF graph failed"):
        convert(golden_model / "init.ckpt", tmp_path / "out", do_lower_case=True, verify=True,
                verify_tolerance=1e-9)
    assert list(tmp_path.iterdir()) == []


def test_unknown_architecture(golden_hf: Path, tmp_path: Path) -> None:
    src = _hf_copy(golden_hf, tmp_path / "x", architectures=("BertForSequenceClassification",))
    with pytest.raises(CheckpointError, match=r"config.json: unsupported architecture"):
        convert_from_hf(src, tmp_path / "tf")


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    pt = tmp_path / "pt"
    pt.mkdir()
    (pt / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    (pt / cm.HF_PICKLE_WEIGHTS).write_bytes(b"not read")
    r = subprocess.run([sys.executable, "-m", "bert.convert_from_huggingface", f"--hf_model_dir={pt}",
                        f"--output_dir={tmp_path / 'o'}"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        f"convert_from_huggingface: error: {pt}: only pickled weights (pytorch_model.bin), which can "
        "run code when loaded; pass --allow_pickle_i_trust_this_code to read them")
    r = subprocess.run([sys.executable, "-m", "bert.convert_to_huggingface",
                        f"--tf_checkpoint={tmp_path / 'missing.ckpt'}", "--do_lower_case",
                        f"--output_dir={tmp_path / 'o'}"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"convert_to_huggingface: error: {tmp_path / 'missing.ckpt'}: TF checkpoint not found")
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- head-less models

TINY = {"vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 32, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64, "type_vocab_size": 2,
        "initializer_range": 0.02}
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(35)]


def _tiny_bert_model(folder: Path) -> Path:
    """A head-less HF BERT as sentence-embedding models ship (BertModel.save_pretrained)."""
    import torch
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    BertModel(BertConfig(**TINY)).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    return folder


def _tiny_checkpoint(folder: Path, heads: str = "pretraining") -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir()
    weights = {n: (rng.standard_normal(s) * 0.02).astype(np.float32)
               for n, s in cm.expected_shapes(TINY, heads).items()}
    cm.write_tf_checkpoint(weights, folder / "model.ckpt-1")
    (folder / "bert_config.json").write_text(json.dumps(TINY))
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    (folder / cm.TRAINING_CONFIG).write_text(json.dumps({"do_lower_case": False}))
    return folder


def test_headless_round_trip_is_bit_identical(tmp_path: Path) -> None:
    """HF BertModel -> TF -> HF: architectures [BertModel], AutoModel loads it with no missing
    key, and the weights are the original's bit for bit (same keys, same bytes)."""
    from safetensors.numpy import load_file
    from transformers import AutoModel
    src = _tiny_bert_model(tmp_path / "st")
    tf_dir = convert_from_hf(src, tmp_path / "tf")
    out = convert(tf_dir, tmp_path / "hf", verify=True)  # verified against the TF graph (pooled output)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertModel"]
    _, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    original, exported = load_file(str(src / cm.HF_WEIGHTS)), load_file(str(out / cm.HF_WEIGHTS))
    assert _same_weights(original, exported)


def test_masked_lm_only_checkpoint_exports_as_masked_lm(tmp_path: Path) -> None:
    from transformers import AutoModelForMaskedLM
    out = convert(_tiny_checkpoint(tmp_path / "mlm", "masked_lm"), tmp_path / "hf", verify=True)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    _, info = AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_compare_weights_encoder_only(tmp_path: Path) -> None:
    from bert.compare_weights import compare as compare_models, format_report
    full = convert(_tiny_checkpoint(tmp_path / "full"), tmp_path / "full_hf", verify=False)
    headless = _tiny_checkpoint(tmp_path / "none", "none")  # same seed: the same encoder values
    r = compare_models(full, headless, max_rel_diff=0.0)
    assert r["weights"]["scope"] == "encoder only: theirs has no pretraining heads"
    assert r["check"]["passed"] and not r["weights"]["only_in_ours"]
    assert len(r["weights"]["tensors"]) == 5 + 16 * 2 + 2  # embeddings, 2 layers, pooler; no cls/*
    assert "encoder only: theirs has no pretraining heads" in format_report(r)
    assert r["text"] == {"skipped": "theirs lacks pretraining-head weights (MLM needs cls/*)"}


# ----------------------------------------------------------------------------- bad checkpoints and disks

def test_corrupt_checkpoint_is_one_line(tmp_path: Path) -> None:
    src = _tiny_checkpoint(tmp_path / "c")
    data_file = next(src.glob("model.ckpt-1.data-*"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])  # truncated
    r = subprocess.run([sys.executable, "-m", "bert.convert_to_huggingface", f"--tf_checkpoint={src}",
                        f"--output_dir={tmp_path / 'o'}", "--noverify"], cwd=REPO,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    assert r.returncode == 1
    # TensorFlow's own start-up lines may precede it (not ours to silence here); no traceback
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"convert_to_huggingface: error: {src / 'model.ckpt-1'}: cannot read TF checkpoint: ")
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()


def test_read_only_output_folder(tmp_path: Path, readonly_dir: Path) -> None:
    src = _tiny_checkpoint(tmp_path / "c")
    parent = readonly_dir
    denied = "(Permission denied|Operation not permitted|Read-only file system)"
    with pytest.raises(CheckpointError, match=rf"{parent / 'hf'}: cannot write the export: .*{denied}"):
        convert(src, parent / "hf", verify=False)
    assert list(parent.iterdir()) == []
    with pytest.raises(CheckpointError, match=rf"{parent / 'tf'}: cannot write the checkpoint: .*{denied}"):
        convert_from_hf(_tiny_bert_model(tmp_path / "st"), parent / "tf")
    assert list(parent.iterdir()) == []


def test_stale_temps_of_this_output_are_removed(tmp_path: Path) -> None:
    src = _tiny_checkpoint(tmp_path / "c")
    own, other = tmp_path / ".huggingface.tmp-abc123", tmp_path / ".other.tmp-abc123"
    own.mkdir()
    (own / "model.safetensors").write_bytes(b"partial")
    other.mkdir()
    convert(src, tmp_path / "huggingface", verify=False)
    assert not own.exists() and other.exists()  # only this output's temporaries


def test_cli_help_exits_zero() -> None:
    for module, flags_expected in (
            ("bert.convert_to_huggingface", ("--tf_checkpoint", "--output_dir", "--do_lower_case", "--verify")),
            ("bert.convert_from_huggingface", ("--hf_model_dir", "--output_dir", "--allow_pickle_i_trust_this_code")),
            ("bert.compare_weights", ("--json", "--plot", "--max_rel_diff", "--no_text"))):
        r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 0, (module, r.stderr)
        for flag in flags_expected:
            assert flag in r.stdout, (module, flag)


def test_full_disk_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    """A write failing half-way (ENOSPC) gives one line naming the folder; no temporary is left."""
    import errno
    from bert import convert_to_huggingface as c2h
    src = _tiny_checkpoint(tmp_path / "c")
    out = tmp_path / "out"
    out.mkdir()
    real = c2h.write_hf_folder

    def half_then_full(folder: Path, *args, **kwargs) -> None:
        real(folder, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "vocab.txt"))
    monkeypatch.setattr(c2h, "write_hf_folder", half_then_full)
    with pytest.raises(CheckpointError, match=rf"{out}: cannot write the export: .*vocab.txt: No space left on device"):
        c2h.convert(src, out, verify=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "out"] and list(out.iterdir()) == []
