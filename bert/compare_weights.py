"""Compare two BERT models (HF folders or TF checkpoints): configs, vocab, casing, weights, behaviour.

    python -m bert.compare_weights OURS THEIRS [--json FILE] [--plot FILE] [--text FILE]
        [--no_text] [--max_rel_diff X]

Each argument is an HF folder (config.json + model.safetensors) or a TF checkpoint (prefix
or folder, with bert_config.json / vocab.txt / training_config.json beside it); both are
brought to Google variable names in memory (`bert.checkpoint_map`), so a conversion compared
with its source shows zero difference. THEIRS is the reference for relative differences.

Per tensor: shape equality, max abs diff, relative L2 difference ||ours - theirs|| / ||theirs||,
cosine similarity; summarised per group (embeddings, layer_N, pooler, cls). Behaviour on text
(needs torch+transformers; `bert.text_probe`): each sentence's tokens are masked one at a time; reported are
fill-mask top-1 agreement (same top prediction) and top-5 agreement (mean overlap of the two
top-5 sets / 5) on sentences both tokenizers split identically, each model's masked-LM
accuracy and pseudo-perplexity exp(mean -log p(token | rest)), and mean cosine similarity of
the two models' [CLS] and mean-pooled final hidden states. A TF checkpoint runs with
`gelu_new` (the tanh GELU its graph computes); an HF folder with its own config's activation.

When either model has no pretraining heads (a BertModel / sentence-embedding export) or
only the MLM head, the weights are compared on the encoder (embeddings, layers, and the
pooler when both have one), and the report says so; the fill-mask probe needs both MLM
heads and is skipped otherwise.

Exit status: 0 (a report), 1 when `--max_rel_diff` is given and a tensor's relative L2
difference exceeds it or a tensor is missing/misshapen on one side, 2 when an input is
unusable (one line: `compare_weights: error: ...`).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from absl import flags

from bert import checkpoint_map as cm
from bert.checkpoint_map import CheckpointError
from bert.text_probe import PROBE_SENTENCES, compare_text, read_sentences
from utils.cli import UsageError, UserError, absl_run, os_error_message

_GROUP_ORDER = ("embeddings", "layer", "pooler", "cls")


@dataclass
class Model:
    """A model brought to the common form: Google variable names, numpy weights."""
    path: str
    kind: str                                   # "hf" or "tf"
    config: dict[str, Any] | None               # Google fields (+ layer_norm_eps, hf_hidden_act)
    weights: dict[str, np.ndarray]
    vocab: list[str] | None
    do_lower_case: bool | None                  # None: not stated anywhere
    tokenizer: dict[str, Any] = field(default_factory=dict)


def load_model(path: str | os.PathLike, allow_pickle: bool = False) -> Model:
    """Load an HF folder (has config.json) or a TF checkpoint prefix/folder."""
    p = Path(path)
    if p.is_dir() and (p / "config.json").is_file():
        raw, hf_weights = cm.read_hf_folder(p, allow_pickle)
        config = cm.google_config(raw, str(p / "config.json"))
        config["layer_norm_eps"] = raw.get("layer_norm_eps", 1e-12)
        # Google names both GELUs `gelu`; what transformers computes is kept apart.
        config["computed_activation"] = raw.get("hidden_act", "gelu")
        vocab = cm.read_vocab(p / "vocab.txt") if (p / "vocab.txt").is_file() else None
        tok = cm.read_json(p / "tokenizer_config.json") if (p / "tokenizer_config.json").is_file() else {}
        tok = {k: tok.get(k) for k in ("tokenizer_class", "do_lower_case", "strip_accents", "model_max_length")}
        return Model(str(p), "hf", config, cm.hf_to_tf_weights(hf_weights, str(p)), vocab,
                     cm.hf_do_lower_case(p), tok)
    prefix = cm.resolve_checkpoint(p)
    folder = Path(prefix).parent
    config = _tf_config(folder)
    if config is not None:
        config["layer_norm_eps"] = 1e-12
        # the TF graph's `gelu` is the tanh form: transformers' `gelu_new` (its `gelu` is erf)
        config["computed_activation"] = "gelu_new" if config["hidden_act"] == "gelu" else config["hidden_act"]
    vocab = cm.read_vocab(folder / "vocab.txt") if (folder / "vocab.txt").is_file() else None
    lower = cm.recorded_do_lower_case(folder)
    return Model(prefix, "tf", config, cm.read_tf_checkpoint(prefix), vocab, lower,
                 {"do_lower_case": lower})


def _tf_config(folder: Path) -> dict[str, Any] | None:
    """bert_config.json beside a checkpoint, else the bert_config recorded by run_pretraining
    in training_config.json; None when neither exists."""
    if (folder / "bert_config.json").is_file():
        return cm.read_bert_config(folder / "bert_config.json")
    if (folder / cm.TRAINING_CONFIG).is_file():
        recorded = cm.read_json(folder / cm.TRAINING_CONFIG).get("bert_config")
        if isinstance(recorded, dict) and all(k in recorded for k in cm.GOOGLE_CONFIG_KEYS):
            return {k: recorded[k] for k in cm.GOOGLE_CONFIG_KEYS}
    return None


# ----------------------------------------------------------------------------- weights

def tensor_stats(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Differences of `a` (ours) from `b` (theirs, the reference), computed in float64."""
    if a.shape != b.shape:
        return {"same_shape": False, "max_abs_diff": None, "rel_l2": None, "cosine": None}
    if a.dtype == b.dtype and a.tobytes() == b.tobytes():  # the common case, without float64 copies
        b64 = b.astype(np.float64).ravel() if b.size < 2**20 else None
        nb2 = float(np.dot(b64, b64)) if b64 is not None else float(np.linalg.norm(b.ravel()) ** 2)
        return {"same_shape": True, "max_abs_diff": 0.0, "rel_l2": 0.0, "cosine": 1.0, "_sq": (0.0, nb2)}
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    d = a64 - b64
    nd, na, nb = (float(np.sqrt(np.dot(x, x))) for x in (d, a64, b64))
    rel = 0.0 if nd == 0 else (nd / nb if nb > 0 else math.inf)
    cos = 1.0 if nd == 0 else (float(np.dot(a64, b64)) / (na * nb) if na > 0 and nb > 0 else None)
    return {"same_shape": True, "max_abs_diff": float(np.max(np.abs(d))) if d.size else 0.0,
            "rel_l2": rel, "cosine": cos, "_sq": (nd * nd, nb * nb)}


def group_of(name: str) -> str:
    """embeddings | layer_N | pooler | cls."""
    m = re.search(r"/layer_(\d+)/", name)
    if m:
        return f"layer_{m.group(1)}"
    return "cls" if name.startswith("cls/") else name.split("/")[1]


def _group_key(group: str) -> tuple[int, int]:
    base, _, n = group.partition("_")
    return (_GROUP_ORDER.index(base) if base in _GROUP_ORDER else len(_GROUP_ORDER), int(n or 0))


def compare_weights(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per-tensor and per-group differences; tensors on one side only are listed."""
    tensors, groups = [], {}
    for name in sorted(set(ours) & set(theirs)):
        s = tensor_stats(ours[name], theirs[name])
        sq = s.pop("_sq", None)
        tensors.append({"name": name, "shape_ours": list(ours[name].shape),
                        "shape_theirs": list(theirs[name].shape), **s})
        g = groups.setdefault(group_of(name), {"n_tensors": 0, "n_differing": 0, "max_abs_diff": 0.0,
                                                "_d2": 0.0, "_b2": 0.0, "shape_mismatch": 0})
        g["n_tensors"] += 1
        if not s["same_shape"]:
            g["shape_mismatch"] += 1
            continue
        g["n_differing"] += s["max_abs_diff"] > 0
        g["max_abs_diff"] = max(g["max_abs_diff"], s["max_abs_diff"])
        g["_d2"] += sq[0]
        g["_b2"] += sq[1]
    layers = {}
    for name in sorted(groups, key=_group_key):
        g = groups[name]
        d2, b2 = g.pop("_d2"), g.pop("_b2")
        g["rel_l2"] = 0.0 if d2 == 0 else (math.sqrt(d2 / b2) if b2 > 0 else math.inf)
        layers[name] = g
    return {"tensors": tensors, "layers": layers,
            "only_in_ours": sorted(set(ours) - set(theirs)),
            "only_in_theirs": sorted(set(theirs) - set(ours)),
            "differing": [t["name"] for t in tensors if not t["same_shape"] or t["max_abs_diff"] > 0]}


def compare_metadata(ours: Model, theirs: Model) -> dict[str, Any]:
    """Config, vocab and tokenizer/casing differences."""
    ca, cb = ours.config or {}, theirs.config or {}
    config = {k: [ca.get(k), cb.get(k)] for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)}
    absent = [n for n, m in (("ours", ours), ("theirs", theirs)) if m.config is None]
    if absent:  # nothing to compare against: say so instead of listing every key as None
        config = {"note": f"no bert_config.json (or recorded bert_config) beside {' and '.join(absent)}"}
    if ours.vocab is None or theirs.vocab is None:
        vocab = {"identical": None, "note": "vocab missing on "
                 + " and ".join(n for n, m in (("ours", ours), ("theirs", theirs)) if m.vocab is None)}
    else:
        n = min(len(ours.vocab), len(theirs.vocab))
        differing = sum(a != b for a, b in zip(ours.vocab[:n], theirs.vocab[:n]))
        differing += abs(len(ours.vocab) - len(theirs.vocab))
        vocab = {"identical": ours.vocab == theirs.vocab, "sizes": [len(ours.vocab), len(theirs.vocab)],
                 "differing_tokens": differing}
    ta, tb = ours.tokenizer, theirs.tokenizer
    tokenizer = {k: [ta.get(k), tb.get(k)] for k in sorted(set(ta) | set(tb)) if ta.get(k) != tb.get(k)}
    return {"config": config, "vocab": vocab, "tokenizer": tokenizer,
            "do_lower_case": [ours.do_lower_case, theirs.do_lower_case],
            "effective_do_lower_case": [_effective_lower(ours), _effective_lower(theirs)]}


def _effective_lower(m: Model) -> bool | None:
    """What a user gets: transformers lower-cases when an HF folder states nothing (the
    published Bio_ClinicalBERT ships no tokenizer config, so users get lower-cased input)."""
    if m.do_lower_case is not None:
        return m.do_lower_case
    return True if m.kind == "hf" else None


# ----------------------------------------------------------------------------- behaviour on text

# ----------------------------------------------------------------------------- driver

def compare(ours: str | os.PathLike, theirs: str | os.PathLike, text_file: str | os.PathLike | None = None,
            no_text: bool = False, max_rel_diff: float | None = None,
            allow_pickle: bool = False) -> dict[str, Any]:
    """The whole report as a dict (what --json writes)."""
    a, b = load_model(ours, allow_pickle), load_model(theirs, allow_pickle)
    report: dict[str, Any] = {"ours": {"path": a.path, "kind": a.kind},
                              "theirs": {"path": b.path, "kind": b.kind}}
    report.update(compare_metadata(a, b))
    scope = encoder_scope(a, b)
    if scope:
        report["weights"] = {"scope": scope, **compare_weights(*encoder_weights(a.weights, b.weights))}
    else:
        report["weights"] = compare_weights(a.weights, b.weights)
    if no_text:
        report["text"] = {"skipped": "--no_text"}
    else:
        report["text"] = compare_text(a, b, read_sentences(text_file) if text_file else PROBE_SENTENCES,
                                      (_effective_lower(a), _effective_lower(b)))
    if max_rel_diff is not None:
        w = report["weights"]
        failing = [t["name"] for t in w["tensors"] if not t["same_shape"] or t["rel_l2"] > max_rel_diff]
        failing += w["only_in_ours"] + w["only_in_theirs"]
        report["check"] = {"max_rel_diff": max_rel_diff, "passed": not failing, "failing": failing}
    return report


def encoder_scope(a: Model, b: Model) -> str | None:
    """Why the weights are compared on the encoder only (a side lacks pretraining heads); None
    when both have every head."""
    lacking = [f"{name} has {'no pretraining heads' if layout == 'none' else 'only the MLM head'}"
               for name, m in (("ours", a), ("theirs", b))
               if (layout := cm.head_layout(m.weights)) != "pretraining"]
    return f"encoder only: {' and '.join(lacking)}" if lacking else None


def encoder_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Both sides without cls/* heads, and without the pooler unless both have it."""
    both_pool = all(any(n.startswith("bert/pooler/") for n in w) for w in (a, b))
    keep = lambda n: not n.startswith("cls/") and (both_pool or not n.startswith("bert/pooler/"))
    return {n: v for n, v in a.items() if keep(n)}, {n: v for n, v in b.items() if keep(n)}


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "0" if x == 0 else f"{x:.3e}" if abs(x) < 1e-2 or abs(x) >= 1e4 else f"{x:.4f}"
    return str(x)


def format_report(r: dict[str, Any], all_tensors: bool = False) -> str:
    """The readable stdout table."""
    lines = [f"ours:   {r['ours']['path']} ({r['ours']['kind']})",
             f"theirs: {r['theirs']['path']} ({r['theirs']['kind']})", "", "== config"]
    lines += ([f"  {r['config']['note']}"] if "note" in r["config"] else
              [f"  {k}: ours={a!r} theirs={b!r}" for k, (a, b) in r["config"].items()] or ["  identical"])
    v = r["vocab"]
    lines += ["== vocab", f"  {v['note']}" if v["identical"] is None else
              f"  identical={v['identical']} sizes={v['sizes']} differing_tokens={v['differing_tokens']}"]
    lines += ["== tokenizer / casing",
              f"  do_lower_case stated: ours={r['do_lower_case'][0]} theirs={r['do_lower_case'][1]}; "
              f"effective: ours={r['effective_do_lower_case'][0]} theirs={r['effective_do_lower_case'][1]}"]
    lines += [f"  {k}: ours={a!r} theirs={b!r}" for k, (a, b) in r["tokenizer"].items()]
    w = r["weights"]
    lines += ["== weights per group (rel L2 = ||ours-theirs|| / ||theirs||)"
              + (f": {w['scope']}" if w.get("scope") else ""),
              f"  {'group':<12}{'tensors':>8}{'differ':>8}{'max abs diff':>14}{'rel L2':>12}"]
    for g, s in w["layers"].items():
        lines.append(f"  {g:<12}{s['n_tensors']:>8}{s['n_differing'] + s['shape_mismatch']:>8}"
                     f"{_fmt(s['max_abs_diff']):>14}{_fmt(s['rel_l2']):>12}")
    shown = w["tensors"] if all_tensors else [t for t in w["tensors"] if t["name"] in w["differing"]]
    lines += [f"== tensors ({len(w['differing'])} of {len(w['tensors'])} shared tensors differ)"]
    for t in shown:
        shape = "" if t["same_shape"] else f" SHAPE {t['shape_ours']} vs {t['shape_theirs']}"
        lines.append(f"  {t['name']}: max_abs={_fmt(t['max_abs_diff'])} rel_l2={_fmt(t['rel_l2'])} "
                     f"cos={_fmt(t['cosine'])}{shape}")
    for side in ("only_in_ours", "only_in_theirs"):
        if w[side]:
            lines.append(f"  {side.replace('_', ' ')}: {', '.join(w[side])}")
    t = r["text"]
    lines.append("== behaviour on text")
    if "skipped" in t:
        lines.append(f"  skipped: {t['skipped']}")
    else:
        for side in ("ours", "theirs"):
            lines.append(f"  {side}: masked-LM accuracy {_fmt(t[side]['mlm_accuracy'])}, pseudo-perplexity "
                         f"{_fmt(t[side]['pseudo_perplexity'])} ({t[side]['masked_tokens']} masked tokens)")
        lines += [f"  note: {n}" for n in t["notes"]]
        lines.append(f"  sentences tokenized identically: {t['same_tokenization']} of {t['sentences']}")
        if t["same_tokenization"]:
            lines.append(f"  fill-mask agreement: top-1 {_fmt(t['top1_agreement'])}, top-5 "
                         f"{_fmt(t['top5_agreement'])}; cosine [CLS] {_fmt(t['cls_cosine'])}, "
                         f"mean-pooled {_fmt(t['mean_pooled_cosine'])}")
    if "check" in r:
        c = r["check"]
        lines.append(f"== check --max_rel_diff {c['max_rel_diff']}: "
                     + ("PASSED" if c["passed"] else f"FAILED ({len(c['failing'])} tensors: "
                        + ", ".join(c["failing"][:10]) + ")"))
    return "\n".join(lines)


def _json_safe(x: Any) -> Any:
    """inf/NaN are not JSON: written as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def plot_layers(report: dict[str, Any], path: str | os.PathLike) -> None:
    """PNG: relative L2 difference per group (symlog axis, so exact zeros show as zero)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from utils.atomic import atomic_path
    layers = report["weights"]["layers"]
    names = list(layers)
    values = [layers[n]["rel_l2"] if layers[n]["rel_l2"] is not None and math.isfinite(layers[n]["rel_l2"])
              else np.nan for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 4))
    ax.bar(range(len(names)), values, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yscale("symlog", linthresh=1e-8)
    top = np.nanmax(values) if not np.all(np.isnan(values)) else 0.0
    ax.set_ylim(0, max(1e-7, 10 * top))
    for i, v in enumerate(values):  # exact values on the bars: zeros are the usual finding
        ax.annotate(_fmt(v) if np.isfinite(v) else "n/a", (i, 0 if not np.isfinite(v) else v),
                    ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_ylabel("relative L2 difference")
    ax.set_title(f"{Path(report['ours']['path']).name} vs {Path(report['theirs']['path']).name}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


class UnusableInput(UserError):
    """A model that cannot be read: exit status 2, apart from a failed --max_rel_diff check (1)."""

    exit_code = 2


def main(argv: Sequence[str]) -> int:
    F = flags.FLAGS
    if len(argv) != 3:
        raise UsageError("expected two models: python -m bert.compare_weights OURS THEIRS [flags]")
    try:
        report = compare(argv[1], argv[2], F.text, F.no_text, F.max_rel_diff,
                         F.allow_pickle_i_trust_this_code)
    except CheckpointError as e:
        raise UnusableInput(str(e)) from None
    print(format_report(report, F.all_tensors))
    try:
        if F.json:
            from utils.atomic import write_json_atomic
            write_json_atomic(F.json, _json_safe(report))
        if F.plot:
            plot_layers(report, F.plot)
    except OSError as e:
        raise UserError(os_error_message(e, "cannot write")) from None
    return 1 if "check" in report and not report["check"]["passed"] else 0


def define_flags() -> None:
    flags.DEFINE_string("json", None, "Write the full report as JSON here.")
    flags.DEFINE_string("plot", None, "Write a PNG of the per-group relative difference here.")
    flags.DEFINE_string("text", None, "Sentences (one per line) for the behaviour comparison "
                        "(default: a built-in synthetic clinical probe set).")
    flags.DEFINE_boolean("no_text", False, "Skip the behaviour-on-text section.")
    flags.DEFINE_float("max_rel_diff", None, "Exit 1 when a tensor's relative L2 difference exceeds "
                       "this (or a tensor is missing / misshapen on one side).")
    flags.DEFINE_boolean("allow_pickle_i_trust_this_code", False,
                         "Read an HF folder's pytorch_model.bin (a pickle: loading it can run code) "
                         "when it has no model.safetensors.")
    flags.DEFINE_boolean("all_tensors", False, "List every tensor, not only the differing ones.")


if __name__ == "__main__":
    define_flags()
    absl_run("compare_weights", main)
