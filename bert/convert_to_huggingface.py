"""Export a Google BERT TF checkpoint as a Hugging Face BERT folder.

    python -m bert.convert_to_huggingface --tf_checkpoint RUN_DIR --output_dir HF_DIR \
        --do_lower_case=false [--exact_gelu]

The transformers class follows the heads the checkpoint has (`checkpoint_map.HEAD_LAYOUTS`):
`BertForPreTraining` for a pretraining checkpoint (MLM + NSP heads), `BertForMaskedLM` for
one with only the MLM head, `BertModel` for a checkpoint without heads (a fine-tuned or
sentence-embedding BERT brought over with convert_from_huggingface); each loads with
AutoModel without a missing key.

Writes config.json, model.safetensors (via `safetensors.numpy`: no torch needed), vocab.txt,
tokenizer_config.json and special_tokens_map.json. Unlike the published Bio_ClinicalBERT,
the tokenizer config states `do_lower_case` (without it transformers lower-cases the
input of a cased model, a long-standing complaint about the published one). The folder is built under a temporary
name, verified, then renamed into place: a failed run leaves nothing behind.

Self-verification (on by default when torch+transformers import): the TF graph
(`bert.modeling` + `run_pretraining.get_masked_lm_output`) on the source checkpoint and the
exported model in transformers run on the same deterministic probe batch; the max abs
differences of the sequence output and of the MLM log-probs (the pooled output when the
model has no MLM head) must be within
`tolerance * max(1, max |TF value|)`. Default tolerance: 1e-4 with `--exact_gelu`
(`gelu_new`, the tanh GELU the TF graph computes: only float rounding differs), 2e-2 without
(transformers' `gelu` is the erf form, so outputs legitimately differ; a
wrong mapping gives O(1) differences). Without `--exact_gelu` the export is additionally run
with `gelu_new` forced and held to the tight bound, so the weights are always checked tightly.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from absl import flags

from bert import checkpoint_map as cm
from bert.checkpoint_map import CheckpointError
from utils.atomic import atomic_dir, is_temp_name, write_json_atomic
from utils.cli import UsageError, absl_run, os_error_message
from utils.tf_quiet import import_tensorflow

TOLERANCE_EXACT_GELU = 1e-4
TOLERANCE_ERF_GELU = 2e-2
SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]"}
ARCHITECTURES = {"pretraining": "BertForPreTraining", "masked_lm": "BertForMaskedLM", "none": "BertModel"}


def hf_config(bert_config: dict[str, Any], exact_gelu: bool, heads: str = "pretraining") -> dict[str, Any]:
    """transformers config.json for a Google BERT config.

    Google's `gelu` is the tanh approximation (transformers `gelu_new`); the published
    model's config says `gelu` (erf), so that is the default and `exact_gelu` opts into the
    activation the TF graph really computes.
    """
    act = bert_config["hidden_act"]
    if exact_gelu and act == "gelu":  # DEVIATION: opt-in exact activation; default as published
        act = "gelu_new"
    return {"architectures": [ARCHITECTURES[heads]], "model_type": "bert",
            **{k: bert_config[k] for k in cm.GOOGLE_CONFIG_KEYS}, "hidden_act": act,
            "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute",
            "tie_word_embeddings": True, "dtype": "float32"}


def tokenizer_config(do_lower_case: bool, model_max_length: int) -> dict[str, Any]:
    """BertTokenizer settings matching Google's FullTokenizer(do_lower_case) (accents are
    stripped exactly when lower-casing, as `strip_accents: null` means in transformers)."""
    # DEVIATION: do_lower_case stated explicitly (the published model ships no tokenizer config)
    return {"tokenizer_class": "BertTokenizer", "do_lower_case": do_lower_case,
            "do_basic_tokenize": True, "tokenize_chinese_chars": True, "strip_accents": None,
            "model_max_length": model_max_length, "clean_up_tokenization_spaces": False,
            **SPECIAL_TOKENS}


def hf_state_dict(tf_weights: dict[str, np.ndarray], heads: str) -> dict[str, np.ndarray]:
    """The state dict transformers' class for `heads` saves: BertModel keys have no `bert.`
    prefix (so an exported BertModel has exactly the keys BertModel.save_pretrained writes)."""
    if heads == "none":  # no MLM decoder, so no tied copies either
        return {k[len("bert."):]: v for k, v in cm.tf_to_hf_weights(tf_weights, with_tied=False).items()}
    return cm.tf_to_hf_weights(tf_weights)


def write_hf_folder(folder: Path, tf_weights: dict[str, np.ndarray], bert_config: dict[str, Any],
                    vocab_file: str | os.PathLike, do_lower_case: bool, exact_gelu: bool,
                    heads: str = "pretraining") -> None:
    """Write every file of the HF folder into `folder` (an existing, empty temp folder)."""
    from safetensors.numpy import save_file
    save_file(hf_state_dict(tf_weights, heads), str(folder / cm.HF_WEIGHTS), metadata={"format": "pt"})
    write_json_atomic(folder / "config.json", hf_config(bert_config, exact_gelu, heads))
    shutil.copyfile(vocab_file, folder / "vocab.txt")
    write_json_atomic(folder / "tokenizer_config.json",
                      tokenizer_config(do_lower_case, bert_config["max_position_embeddings"]))
    write_json_atomic(folder / "special_tokens_map.json", SPECIAL_TOKENS)


# ----------------------------------------------------------------------------- verification

def probe_batch(config: dict[str, Any], seed: int = 1234) -> dict[str, np.ndarray]:
    """A deterministic batch exercising padding, both segments and several masked positions."""
    rng = np.random.RandomState(seed)
    batch, seq = 2, min(32, config["max_position_embeddings"])
    lengths = np.array([seq, seq * 3 // 4])
    ids = rng.randint(1, config["vocab_size"], size=(batch, seq)).astype(np.int32)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int32)
    ids *= mask
    types = ((np.arange(seq)[None, :] >= seq // 2) & mask.astype(bool)).astype(np.int32)
    types = np.minimum(types, config["type_vocab_size"] - 1)
    n_pred = 5
    positions = np.stack([np.sort(rng.choice(np.arange(1, n), n_pred, replace=False))
                          for n in lengths]).astype(np.int32)
    return {"input_ids": ids, "input_mask": mask, "token_type_ids": types, "positions": positions}


def tf_reference(prefix: str, bert_config_file: str, batch: dict[str, np.ndarray], with_mlm: bool = True
                 ) -> dict[str, np.ndarray]:
    """Sequence output and MLM log-probs (pooled output without an MLM head) of the TF graph
    (Google BERT code path) on `batch`."""
    tf = import_tensorflow()
    from bert import modeling, run_pretraining
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        config = modeling.BertConfig.from_json_file(bert_config_file)
        model = modeling.BertModel(config, False, tf.constant(batch["input_ids"]),
                                   tf.constant(batch["input_mask"]), tf.constant(batch["token_type_ids"]))
        if with_mlm:
            positions = tf.constant(batch["positions"])
            _, _, second = run_pretraining.get_masked_lm_output(
                config, model.get_sequence_output(), model.get_embedding_table(), positions,
                tf.zeros_like(positions), tf.ones(positions.shape, tf.float32))
        else:
            second = model.get_pooled_output()
        # a checkpoint with only the MLM head has no pooler: restore what it has (the pooler
        # is not on the path of the outputs compared then)
        stored = set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
        saver = tf1.train.Saver({v.op.name: v for v in tf1.global_variables() if v.op.name in stored})
        with tf1.Session(graph=graph) as sess:
            saver.restore(sess, prefix)
            seq, out = sess.run([model.get_sequence_output(), second])
    return {"sequence_output": seq, "mlm_log_probs" if with_mlm else "pooled_output": out}


def hf_outputs(hf_dir: str | os.PathLike, batch: dict[str, np.ndarray],
               hidden_act: str | None = None) -> dict[str, np.ndarray]:
    """The same outputs from the exported folder loaded by transformers, with the class its
    config names (`hidden_act` overrides the folder's activation)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    with open(Path(hf_dir) / "config.json", encoding="utf-8") as f:
        architecture = json.load(f)["architectures"][0]
    override = {"hidden_act": hidden_act} if hidden_act else {}
    model = getattr(transformers, architecture).from_pretrained(str(hf_dir), local_files_only=True,
                                                                **override).eval()
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(batch["input_ids"]).long(),
                    attention_mask=torch.from_numpy(batch["input_mask"]).long(),
                    token_type_ids=torch.from_numpy(batch["token_type_ids"]).long(),
                    output_hidden_states=True)
    if architecture == "BertModel":
        return {"sequence_output": out.last_hidden_state.numpy(), "pooled_output": out.pooler_output.numpy()}
    logits = (out.prediction_logits if architecture == "BertForPreTraining" else out.logits).numpy()
    pos = batch["positions"]
    gathered = logits[np.arange(pos.shape[0])[:, None], pos].reshape(-1, logits.shape[-1])
    log_probs = torch.log_softmax(torch.from_numpy(gathered), dim=-1).numpy()
    return {"sequence_output": out.hidden_states[-1].numpy(), "mlm_log_probs": log_probs}


def verify_export(prefix: str, bert_config_file: str, hf_dir: str | os.PathLike,
                  tolerance: float) -> dict[str, float]:
    """Compare TF graph and exported model; raise CheckpointError when beyond tolerance.

    Returns {check/output name: max abs diff}. The bound is `tolerance * max(1, max |TF
    value|)` so that one setting suits small and large activations. When the export says
    `gelu` (erf) for a tanh-GELU TF graph, a second check runs the export with `gelu_new`
    at the tight tolerance: the loose as-exported bound alone could hide a subtle mapping
    error, this one cannot.
    """
    with open(bert_config_file, encoding="utf-8") as f:
        config = json.load(f)
    with open(Path(hf_dir) / "config.json", encoding="utf-8") as f:
        exported_act = json.load(f)["hidden_act"]
    batch = probe_batch(config)
    ref = tf_reference(prefix, bert_config_file, batch, with_mlm=hf_arch(hf_dir) != "BertModel")
    checks = [(f"as exported (hidden_act={exported_act})", None, tolerance)]
    if config["hidden_act"] == "gelu" and exported_act != "gelu_new":
        checks.append(("weights (hidden_act=gelu_new)", "gelu_new", min(tolerance, TOLERANCE_EXACT_GELU)))
    diffs, failures = {}, []
    for label, act, tol in checks:
        got = hf_outputs(hf_dir, batch, act)
        for name, want in ref.items():
            diff = float(np.max(np.abs(got[name] - want)))
            limit = tol * max(1.0, float(np.max(np.abs(want))))
            diffs[f"{label}: {name}"] = diff
            print(f"verify {label}: {name}: max abs diff {diff:.3e} (limit {limit:.3e})", file=sys.stderr)
            if not diff <= limit:  # also catches NaN
                failures.append(f"{label} {name} max abs diff {diff:.3e} > {limit:.3e}")
    if failures:
        raise CheckpointError(f"{hf_dir}: verification against the TF graph failed: {'; '.join(failures)}")
    return diffs


def hf_arch(hf_dir: str | os.PathLike) -> str:
    with open(Path(hf_dir) / "config.json", encoding="utf-8") as f:
        return json.load(f)["architectures"][0]


def _verification_available() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        return True
    except ImportError:
        return False


# ----------------------------------------------------------------------------- conversion

def convert(tf_checkpoint: str | os.PathLike, output_dir: str | os.PathLike,
            bert_config_file: str | os.PathLike | None = None,
            vocab_file: str | os.PathLike | None = None, do_lower_case: bool | None = None,
            exact_gelu: bool = False, verify: bool | None = None,
            verify_tolerance: float | None = None, overwrite: bool = False) -> Path:
    """Convert a TF checkpoint (prefix or run folder) into an HF folder; return its path.

    `bert_config_file`/`vocab_file` default to bert_config.json/vocab.txt beside the
    checkpoint; `do_lower_case` defaults to the value recorded in training_config.json
    there and is an error when neither states it. `verify=None` means verify when
    torch+transformers import.
    """
    prefix = cm.resolve_checkpoint(tf_checkpoint)
    ckpt_dir = Path(prefix).parent
    bert_config_file = Path(bert_config_file) if bert_config_file else ckpt_dir / "bert_config.json"
    vocab_file = Path(vocab_file) if vocab_file else ckpt_dir / "vocab.txt"
    for what, path, flag in (("BERT config", bert_config_file, "--bert_config_file"),
                             ("vocab", vocab_file, "--vocab_file")):
        if not path.is_file():
            raise CheckpointError(f"{path}: {what} file not found (pass {flag})")
    recorded = cm.recorded_do_lower_case(ckpt_dir)
    if do_lower_case is None:
        if recorded is None:
            raise CheckpointError(f"{ckpt_dir}: casing unknown: pass --do_lower_case=true|false "
                                  f"(no {cm.TRAINING_CONFIG} with do_lower_case beside the checkpoint)")
        do_lower_case = recorded
    elif recorded is not None and recorded != do_lower_case:
        print(f"warning: --do_lower_case={do_lower_case} overrides do_lower_case={recorded} "
              f"recorded in {ckpt_dir / cm.TRAINING_CONFIG}", file=sys.stderr)
    cm.check_output_dir(output_dir, overwrite)
    remove_own_stale_temps(output_dir)

    config = cm.read_bert_config(bert_config_file)
    cm.check_vocab(cm.read_vocab(vocab_file), config, vocab_file)
    weights = cm.read_tf_checkpoint(prefix)
    heads = cm.head_layout(weights)
    cm.check_weights(weights, config, prefix, heads=heads)
    if verify is None:
        verify = _verification_available()
        if not verify:
            print("note: torch/transformers not importable: export not verified", file=sys.stderr)
    elif verify and not _verification_available():
        raise CheckpointError("--verify needs torch and transformers (pip install them, or --noverify)")
    if verify_tolerance is None:
        verify_tolerance = TOLERANCE_EXACT_GELU if exact_gelu else TOLERANCE_ERF_GELU

    out = Path(output_dir)
    try:
        with atomic_dir(output_dir) as tmp:
            write_hf_folder(tmp, weights, config, vocab_file, do_lower_case, exact_gelu, heads)
            if verify:
                verify_export(prefix, str(bert_config_file), tmp, verify_tolerance)
    except OSError as e:  # a read-only or full disk: the temporary folder is already removed
        raise CheckpointError(f"{out}: cannot write the export: {os_error_message(e)}") from None
    print(f"wrote {out} ({ARCHITECTURES[heads]}, {len(weights)} tensors from {prefix}, "
          f"do_lower_case={do_lower_case}, hidden_act={hf_config(config, exact_gelu)['hidden_act']})",
          file=sys.stderr)
    return out


def remove_own_stale_temps(output_dir: str | os.PathLike) -> list[Path]:
    """Remove the temporaries a killed export to `output_dir` left beside it (only this
    output's: `.NAME.tmp-*` / `.NAME.old-*`, never another folder's)."""
    out = Path(output_dir).absolute()
    removed = []
    if out.parent.is_dir():
        for path in out.parent.glob(f".{out.name}.*"):
            if is_temp_name(path.name) and path.name[len(out.name) + 2:].startswith(("tmp-", "old-")):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        print(f"removed {len(removed)} temporary folder(s) left by an interrupted export", file=sys.stderr)
    return removed


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise UsageError(f"unexpected argument(s): {' '.join(argv[1:])}")
    F = flags.FLAGS
    convert(F.tf_checkpoint, F.output_dir, F.bert_config_file, F.vocab_file, F.do_lower_case,
            F.exact_gelu, F.verify, F.verify_tolerance, F.overwrite)


def define_flags() -> None:
    flags.DEFINE_string("tf_checkpoint", None, "Checkpoint prefix, or a folder (its newest checkpoint).")
    flags.DEFINE_string("bert_config_file", None, "Default: bert_config.json beside the checkpoint.")
    flags.DEFINE_string("vocab_file", None, "Default: vocab.txt beside the checkpoint.")
    flags.DEFINE_boolean("do_lower_case", None, "Tokenizer casing. Required unless training_config.json "
                         "beside the checkpoint records it.")
    flags.DEFINE_boolean("exact_gelu", False, "Write hidden_act gelu_new (the tanh GELU the TF graph "
                         "computes) instead of the TF config's name (gelu = erf in transformers).")
    flags.DEFINE_string("output_dir", None, "HF folder to create.")
    flags.DEFINE_boolean("verify", None, "Compare TF graph and export on a probe batch "
                         "(default: when torch+transformers import).")
    flags.DEFINE_float("verify_tolerance", None, f"Default {TOLERANCE_EXACT_GELU} with --exact_gelu, "
                       f"else {TOLERANCE_ERF_GELU} (relative to max(1, max |output|)).")
    flags.DEFINE_boolean("overwrite", False, "Replace a non-empty output_dir.")
    flags.mark_flags_as_required(["tf_checkpoint", "output_dir"])


if __name__ == "__main__":
    define_flags()
    absl_run("convert_to_huggingface", main)
