"""Name mapping and weight IO between Google BERT TF checkpoints and Hugging Face BERT folders.

One implementation shared by `convert_to_huggingface`, `convert_from_huggingface` and
`compare_weights`. The canonical in-memory form is a dict of numpy arrays keyed by the
Google variable names (`bert/encoder/layer_0/...`), model weights only (no optimizer slots,
no `global_step`), dense kernels stored `[in, out]` as in TF. The mapping is transformers'
own TF-checkpoint loader's (`bert/` -> `bert.`, `layer_N` -> `layer.N`, kernels transposed,
`gamma`/`beta` -> `weight`/`bias`, the MLM decoder tied to the word embeddings; see
`tf_to_hf_name`); nothing here needs TensorFlow graphs, `bert.modeling` or torch.

Somewhat over the project's ~400-line guide: the name mapping, the expected shapes and
the readers of both formats (checkpoints, configs, vocab, HF folders) validate against
each other and every converter needs all of them; split, each part would import the rest.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from utils.cli import UserError
from utils.tf_quiet import import_tensorflow

GOOGLE_CONFIG_KEYS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "intermediate_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
    "max_position_embeddings", "type_vocab_size", "initializer_range")

# HF architectures whose key layout we understand (`tf_to_hf_name`); anything else is refused.
KNOWN_ARCHITECTURES = ("BertForPreTraining", "BertForMaskedLM", "BertModel")
HF_WEIGHTS = "model.safetensors"
HF_PICKLE_WEIGHTS = "pytorch_model.bin"
TRAINING_CONFIG = "training_config.json"
# transformers ties the MLM decoder to the word embeddings; BertForPreTraining still lists both
# keys in its state dict, so the export writes them (as copies) and the reader checks them.
TIED_KEYS = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
             "cls.predictions.decoder.bias": "cls.predictions.bias"}
_SLOT_SUFFIXES = ("/adam_m", "/adam_v")


class CheckpointError(UserError, ValueError):
    """An unusable checkpoint, config or model folder; the message names the file (and the
    tensor or key). A UserError (one line, exit 1); also a ValueError for older callers."""


# ----------------------------------------------------------------------------- names

def is_model_weight(tf_name: str) -> bool:
    """True for BERT weights; False for optimizer slots, `global_step` and other bookkeeping."""
    if tf_name.endswith(_SLOT_SUFFIXES) or tf_name == "global_step":
        return False
    return tf_name.startswith(("bert/", "cls/"))


def tf_to_hf_name(tf_name: str) -> str:
    """Google variable name -> BertForPreTraining state-dict key (transformers' naming)."""
    special = {"cls/predictions/output_bias": "cls.predictions.bias",
               "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",
               "cls/seq_relationship/output_bias": "cls.seq_relationship.bias"}
    if tf_name in special:
        return special[tf_name]
    name = re.sub(r"layer_(\d+)", r"layer.\1", tf_name).replace("/", ".")
    if name.endswith("_embeddings"):
        return name + ".weight"
    for tf_suffix, hf_suffix in ((".kernel", ".weight"), (".gamma", ".weight"), (".beta", ".bias")):
        if name.endswith(tf_suffix):
            return name[: -len(tf_suffix)] + hf_suffix
    return name  # `.../bias` stays `.bias`


def hf_to_tf_name(hf_name: str) -> str:
    """BertForPreTraining key -> Google variable name; the inverse of `tf_to_hf_name`.

    Which `.weight` was a `kernel` and which a `gamma` is decided by the module it belongs
    to (LayerNorm -> gamma/beta; embeddings -> bare table name; dense -> kernel/bias).
    """
    special = {"cls.predictions.bias": "cls/predictions/output_bias",
               "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
               "cls.seq_relationship.bias": "cls/seq_relationship/output_bias"}
    if hf_name in special:
        return special[hf_name]
    module, _, leaf = hf_name.rpartition(".")
    if module.endswith("_embeddings") and leaf == "weight":
        tf_name = module
    elif module.endswith("LayerNorm"):
        tf_name = module + {"weight": ".gamma", "bias": ".beta"}[leaf]
    else:
        tf_name = module + {"weight": ".kernel", "bias": ".bias"}[leaf]
    return re.sub(r"layer\.(\d+)", r"layer_\1", tf_name).replace(".", "/")


def _is_kernel(tf_name: str) -> bool:
    return tf_name.endswith("/kernel")


def tf_to_hf_weights(tf_weights: dict[str, np.ndarray], with_tied: bool = True) -> dict[str, np.ndarray]:
    """Google-named weights -> BertForPreTraining state dict (kernels transposed to [out, in]).

    `with_tied` adds the decoder keys transformers' BertForPreTraining lists (copies of the
    word embeddings and the MLM output bias) so that loading reports no missing key.
    """
    hf: dict[str, np.ndarray] = {}
    for name, value in tf_weights.items():
        if not is_model_weight(name):
            continue
        hf[tf_to_hf_name(name)] = np.ascontiguousarray(value.T if _is_kernel(name) else value)
    if with_tied:
        for tied, source in TIED_KEYS.items():
            if source in hf:
                hf[tied] = hf[source].copy()
    return hf


def hf_to_tf_weights(hf_weights: dict[str, np.ndarray], source: str = "") -> dict[str, np.ndarray]:
    """HF BERT state dict (BertForPreTraining / BertForMaskedLM / BertModel layout, with or
    without the `bert.` prefix) -> Google-named weights. Tied decoder copies are dropped after
    checking they equal their source (an untied decoder has no Google BERT equivalent)."""
    hf = {}
    for key, value in hf_weights.items():
        if not key.startswith(("bert.", "cls.")):
            key = "bert." + key  # BertModel layout: no prefix
        # pytorch-pretrained-bert era files (as the published clinical ones) name LayerNorm
        # parameters gamma/beta; transformers renames them on load, and so do we.
        key = re.sub(r"(LayerNorm)\.gamma$", r"\1.weight", re.sub(r"(LayerNorm)\.beta$", r"\1.bias", key))
        hf[key] = value
    for tied, src in TIED_KEYS.items():
        if tied in hf:
            value = hf.pop(tied)
            if src in hf and not np.array_equal(value, hf[src]):
                raise CheckpointError(f"{source}: {tied} differs from {src}: an untied MLM decoder "
                                      "cannot be stored in a Google BERT checkpoint")
            hf.setdefault(src, value)
    tf_weights = {}
    for key, value in hf.items():
        if key.endswith("position_ids") or key.endswith("num_batches_tracked"):
            continue  # buffers some older exports carry, not weights
        try:
            name = hf_to_tf_name(key)
        except KeyError:
            raise CheckpointError(f"{source}: unknown weight key {key!r}") from None
        tf_weights[name] = np.ascontiguousarray(value.T if _is_kernel(name) else value)
    return tf_weights


# Which heads a checkpoint carries, by the transformers class it exports as:
#   pretraining  pooler + MLM + NSP heads (BertForPreTraining: Google's pretraining checkpoints)
#   masked_lm    MLM head, no pooler and no NSP head (BertForMaskedLM)
#   none         encoder + pooler, no cls/* (BertModel: fine-tuned / sentence-embedding BERTs)
HEAD_LAYOUTS = ("pretraining", "masked_lm", "none")


def head_layout(weights: dict[str, np.ndarray]) -> str:
    """The HEAD_LAYOUTS entry `weights` look like (by which head variables are present)."""
    has = {p: any(n.startswith(p) for n in weights) for p in ("cls/predictions/", "cls/seq_relationship/",
                                                             "bert/pooler/")}
    if not has["cls/predictions/"] and not has["cls/seq_relationship/"]:
        return "none"
    if has["cls/predictions/"] and not has["cls/seq_relationship/"] and not has["bert/pooler/"]:
        return "masked_lm"
    return "pretraining"


def expected_shapes(config: dict[str, Any], heads: str = "pretraining") -> dict[str, tuple[int, ...]]:
    """Every Google BERT model variable and its shape for `config`, with the `heads` layout's
    head variables (default: all pretraining heads)."""
    H, I = config["hidden_size"], config["intermediate_size"]
    V, P, T = config["vocab_size"], config["max_position_embeddings"], config["type_vocab_size"]
    shapes: dict[str, tuple[int, ...]] = {
        "bert/embeddings/word_embeddings": (V, H),
        "bert/embeddings/token_type_embeddings": (T, H),
        "bert/embeddings/position_embeddings": (P, H),
        "bert/embeddings/LayerNorm/beta": (H,), "bert/embeddings/LayerNorm/gamma": (H,)}
    for n in range(config["num_hidden_layers"]):
        p = f"bert/encoder/layer_{n}/"
        for d in ("attention/self/query", "attention/self/key", "attention/self/value",
                  "attention/output/dense"):
            shapes[p + d + "/kernel"], shapes[p + d + "/bias"] = (H, H), (H,)
        shapes[p + "intermediate/dense/kernel"], shapes[p + "intermediate/dense/bias"] = (H, I), (I,)
        shapes[p + "output/dense/kernel"], shapes[p + "output/dense/bias"] = (I, H), (H,)
        for ln in ("attention/output/LayerNorm", "output/LayerNorm"):
            shapes[p + ln + "/beta"], shapes[p + ln + "/gamma"] = (H,), (H,)
    shapes.update({
        "bert/pooler/dense/kernel": (H, H), "bert/pooler/dense/bias": (H,),
        "cls/predictions/transform/dense/kernel": (H, H), "cls/predictions/transform/dense/bias": (H,),
        "cls/predictions/transform/LayerNorm/beta": (H,), "cls/predictions/transform/LayerNorm/gamma": (H,),
        "cls/predictions/output_bias": (V,),
        "cls/seq_relationship/output_weights": (2, H), "cls/seq_relationship/output_bias": (2,)})
    if heads == "none":
        shapes = {n: s for n, s in shapes.items() if not n.startswith("cls/")}
    elif heads == "masked_lm":
        shapes = {n: s for n, s in shapes.items()
                  if not n.startswith(("cls/seq_relationship/", "bert/pooler/"))}
    return shapes


def check_weights(weights: dict[str, np.ndarray], config: dict[str, Any], source: str,
                  require_all: bool = True, heads: str = "pretraining") -> list[str]:
    """Check every weight's shape against `config`; return the expected names that are absent.

    Raises on a shape mismatch or an unknown variable (naming it), and on absent variables
    when `require_all` (absent from the `heads` layout, see HEAD_LAYOUTS).
    """
    expected = expected_shapes(config)
    required = expected_shapes(config, heads)
    for name, value in weights.items():
        if name not in expected:
            raise CheckpointError(f"{source}: unexpected variable {name} {list(value.shape)} "
                                  f"(not a BERT variable for this config: num_hidden_layers="
                                  f"{config['num_hidden_layers']})")
        if tuple(value.shape) != expected[name]:
            raise CheckpointError(f"{source}: tensor {name} has shape {list(value.shape)} but the "
                                  f"config implies {list(expected[name])}")
    missing = [n for n in required if n not in weights]
    if missing and require_all:
        raise CheckpointError(f"{source}: {len(missing)} variable(s) missing: {', '.join(missing[:8])}"
                              + (" ..." if len(missing) > 8 else ""))
    return missing


# ----------------------------------------------------------------------------- TF checkpoints

def resolve_checkpoint(path: str | os.PathLike) -> str:
    """A checkpoint prefix, or a directory meaning its newest checkpoint -> an existing prefix.

    Directory: the `checkpoint` state file's model_checkpoint_path if present, else the
    highest `model.ckpt-N`, else a single `*.ckpt` prefix (e.g. `bert_model.ckpt`).
    """
    path = Path(path)
    if path.is_dir():
        prefix = None
        state = path / "checkpoint"
        if state.is_file():
            m = re.search(r'^model_checkpoint_path:\s*"(.*)"', state.read_text(), re.M)
            if m:
                prefix = Path(m.group(1)) if os.path.isabs(m.group(1)) else path / m.group(1)
                if not Path(str(prefix) + ".index").is_file() and (path / (prefix.name + ".index")).is_file():
                    prefix = path / prefix.name  # a run folder moved since: state holds old absolute paths
        if prefix is None:
            steps = [(int(m.group(1)), p) for p in path.glob("model.ckpt-*.index")
                     if (m := re.fullmatch(r"model\.ckpt-(\d+)\.index", p.name))]
            others = sorted(path.glob("*.ckpt.index"))
            if steps:
                prefix = path / max(steps)[1].name[: -len(".index")]
            elif len(others) == 1:
                prefix = path / others[0].name[: -len(".index")]
            else:
                raise CheckpointError(f"{path}: no TF checkpoint found in this directory "
                                      "(no `checkpoint` file, model.ckpt-N.index or single *.ckpt.index)")
        path = prefix
    if not Path(str(path) + ".index").is_file():
        raise CheckpointError(f"{path}: TF checkpoint not found ({path}.index does not exist)")
    return str(path)


def read_tf_checkpoint_shapes(prefix: str) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """(variable -> shape, variable -> tf.DType) of every variable of a TF checkpoint, read
    from its index alone: no tensor is loaded, so this is cheap on any model size."""
    tf = import_tensorflow()
    try:
        reader = tf.train.load_checkpoint(prefix)
        return reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    except Exception as e:  # TF raises several types for corrupt/absent files
        raise CheckpointError(f"{prefix}: cannot read TF checkpoint: {str(e).splitlines()[0]}") from None


def read_tf_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    """Model weights of a name-based TF checkpoint (slots and global_step skipped)."""
    tf = import_tensorflow()  # imported lazily: the HF-only paths do not need it
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = sorted(reader.get_variable_to_shape_map())
        # tensors are read inside the try: a truncated or corrupt .data file fails here
        return {n: reader.get_tensor(n) for n in names if is_model_weight(n)}
    except Exception as e:  # TF raises several types for corrupt/absent files
        raise CheckpointError(f"{prefix}: cannot read TF checkpoint: {str(e).splitlines()[0]}") from None


def write_tf_checkpoint(weights: dict[str, np.ndarray], prefix: str | os.PathLike) -> None:
    """Write a name-based TF checkpoint (`prefix.index`, `prefix.data-00000-of-00001`).

    Uses the SaveV2 op directly: no graph, no `bert.modeling`, values stored bit-exactly.
    Google BERT's Saver / init_from_checkpoint read it by variable name.
    """
    tf = import_tensorflow()
    names = sorted(weights)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(weights[n]) for n in names])


# ----------------------------------------------------------------------------- configs, vocab

def read_json(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return obj


def read_bert_config(path: str | os.PathLike) -> dict[str, Any]:
    """A Google `bert_config.json` (or an HF config.json: the same keys) -> the Google fields.

    The one reader and validator of BERT configs (`modeling.BertConfig.from_json_file`
    delegates here): every key present with a sane type and value, else CheckpointError
    naming the file and the key (Google's code failed later with an obscure error).
    """
    raw = read_json(path)
    missing = [k for k in GOOGLE_CONFIG_KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: BERT config lacks field(s) "
                              + ", ".join(f"'{k}'" for k in missing))
    for key in GOOGLE_CONFIG_KEYS:
        if not _valid_config_value(key, raw[key]):
            raise CheckpointError(f"{path}: bad value for key '{key}': {raw[key]!r}")
    if raw["hidden_size"] % raw["num_attention_heads"]:
        raise CheckpointError(f"{path}: key 'hidden_size' ({raw['hidden_size']}) is not a "
                              f"multiple of 'num_attention_heads' ({raw['num_attention_heads']})")
    return {k: raw[k] for k in GOOGLE_CONFIG_KEYS}


def _valid_config_value(key: str, value: Any) -> bool:
    if key == "hidden_act":  # Google's modeling.get_activation names
        return isinstance(value, str) and value.lower() in set(_GOOGLE_ACTIVATIONS.values())
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key.endswith("_prob"):
        return is_number and 0 <= value < 1
    if key == "initializer_range":
        return is_number and value >= 0
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# transformers activation names -> Google BERT's. Google's `gelu` is the tanh form; the
# published clinical config says `gelu` (erf) for a model trained with the tanh form, so
# both GELU spellings map back to Google's single `gelu` (transformers: `gelu` is erf,
# `gelu_new` the tanh form).
_GOOGLE_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu",
                       "relu": "relu", "tanh": "tanh", "linear": "linear"}


def google_activation(hf_act: str | None) -> str | None:
    """Google BERT's name for a transformers activation; None when it has none."""
    return _GOOGLE_ACTIVATIONS.get(hf_act) if isinstance(hf_act, str) else None


def google_config(hf_config: dict[str, Any], source: str) -> dict[str, Any]:
    """bert_config.json fields from an HF config.json (transformers defaults for absent ones)."""
    defaults = {"hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02}
    config = {k: hf_config.get(k, defaults.get(k)) for k in GOOGLE_CONFIG_KEYS}
    absent = [k for k, v in config.items() if v is None]
    if absent:
        raise CheckpointError(f"{source}: config lacks field(s) {', '.join(absent)}")
    act = google_activation(config["hidden_act"])
    if act is None:
        raise CheckpointError(f"{source}: hidden_act {config['hidden_act']!r} has no Google BERT equivalent")
    config["hidden_act"] = act
    if abs(float(hf_config.get("layer_norm_eps", 1e-12)) - 1e-12) > 1e-15:
        raise CheckpointError(f"{source}: layer_norm_eps {hf_config['layer_norm_eps']} != 1e-12 "
                              "(fixed in Google BERT)")
    return config


def read_vocab(path: str | os.PathLike) -> list[str]:
    """Vocabulary tokens, one per line (as Google's tokenization.load_vocab)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n").strip() for line in f]
    except FileNotFoundError:
        raise CheckpointError(f"{path}: vocab file not found") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def check_vocab(vocab: list[str], config: dict[str, Any], vocab_path: str | os.PathLike) -> None:
    if len(vocab) != config["vocab_size"]:
        raise CheckpointError(f"{vocab_path}: vocab has {len(vocab)} tokens but the config says "
                              f"vocab_size {config['vocab_size']}")


# ----------------------------------------------------------------------------- HF folders

def read_hf_folder(hf_dir: str | os.PathLike, allow_pickle: bool = False
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(raw config.json, HF state dict as numpy) of an HF BERT folder.

    Only safetensors are read by default; `pytorch_model.bin` is a pickle (it can run code
    when loaded) and is read only with `allow_pickle`, and then with torch's weights_only.
    """
    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise CheckpointError(f"{hf_dir}: Hugging Face model folder not found")
    config = read_json(hf_dir / "config.json")
    archs = config.get("architectures") or []
    if config.get("model_type", "bert") != "bert" or any(a not in KNOWN_ARCHITECTURES for a in archs):
        raise CheckpointError(f"{hf_dir / 'config.json'}: unsupported architecture "
                              f"model_type={config.get('model_type')!r} architectures={archs} "
                              f"(supported: bert with {', '.join(KNOWN_ARCHITECTURES)})")
    st, pt = hf_dir / HF_WEIGHTS, hf_dir / HF_PICKLE_WEIGHTS
    if st.is_file():
        from safetensors.numpy import load_file
        try:
            weights = load_file(str(st))
        except Exception as e:
            raise CheckpointError(f"{st}: cannot read safetensors: {str(e).splitlines()[0]}") from None
    elif pt.is_file():
        if not allow_pickle:
            raise CheckpointError(f"{hf_dir}: only pickled weights ({HF_PICKLE_WEIGHTS}), which can run "
                                  "code when loaded; pass --allow_pickle_i_trust_this_code to read them")
        import torch
        state = torch.load(str(pt), map_location="cpu", weights_only=True)
        weights = {k: v.float().numpy() if v.dtype.is_floating_point else v.numpy()
                   for k, v in state.items()}
    else:
        raise CheckpointError(f"{hf_dir}: no {HF_WEIGHTS} (sharded or other weight files are not supported)")
    return config, weights


def hf_do_lower_case(hf_dir: str | os.PathLike) -> bool | None:
    """do_lower_case stated by the folder's tokenizer_config.json; None when it states nothing."""
    path = Path(hf_dir) / "tokenizer_config.json"
    if not path.is_file():
        return None
    value = read_json(path).get("do_lower_case")
    return bool(value) if value is not None else None


def recorded_do_lower_case(ckpt_dir: str | os.PathLike) -> bool | None:
    """do_lower_case recorded in `training_config.json` beside a checkpoint; None when absent.

    Read at the top level (written by `convert_from_huggingface`) or under "flags" (written
    by `run_pretraining`, whose --do_lower_case is optional there and may be null).
    """
    path = Path(ckpt_dir) / TRAINING_CONFIG
    if not path.is_file():
        return None
    obj = read_json(path)
    value = obj.get("do_lower_case")
    if value is None and isinstance(obj.get("flags"), dict):
        value = obj["flags"].get("do_lower_case")
    if value is not None and not isinstance(value, bool):
        raise CheckpointError(f"{path}: do_lower_case must be true or false, got {value!r}")
    return value


# ----------------------------------------------------------------------------- output folders

def check_output_dir(output_dir: str | os.PathLike, overwrite: bool) -> None:
    """Refuse (before any work) to replace a non-empty folder unless `overwrite`."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out}: output path exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CheckpointError(f"{out}: output folder exists and is not empty (pass --overwrite to replace it)")
