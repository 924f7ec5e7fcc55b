"""Behaviour of two BERT models on text: the fill-mask probe behind `bert.compare_weights`.

Each sentence's tokens are masked one at a time; reported are fill-mask top-1 agreement
(same top prediction) and top-5 agreement (mean overlap of the two top-5 sets / 5) on
sentences both tokenizers split identically, each model's masked-LM accuracy and
pseudo-perplexity exp(mean -log p(token | rest)), and mean cosine similarity of the two
models' [CLS] and mean-pooled final hidden states. Models are `compare_weights.Model`
objects (Google-named numpy weights + config + vocab); needs torch + transformers.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bert import checkpoint_map as cm
from bert.checkpoint_map import CheckpointError

# Synthetic clinical-style sentences written for this tool (no patient data).
PROBE_SENTENCES = (
    "The patient was admitted to the intensive care unit with acute respiratory failure.",
    "She has a history of hypertension, type 2 diabetes mellitus and chronic kidney disease.",
    "Chest x-ray showed bilateral infiltrates consistent with pneumonia.",
    "He was started on intravenous antibiotics and his fever resolved within two days.",
    "The patient denies chest pain, shortness of breath, nausea or vomiting.",
    "Blood pressure was 142/88 and heart rate was 96 beats per minute.",
    "An echocardiogram demonstrated an ejection fraction of 35 percent.",
    "Her creatinine increased from 1.2 to 2.4 over the course of the admission.",
    "The patient was discharged home in stable condition with follow-up in cardiology clinic.",
    "A CT scan of the head without contrast showed no acute intracranial hemorrhage.",
    "Metoprolol was held because of bradycardia and hypotension.",
    "The wound was cleaned and dressed, and there were no signs of infection.",
    "He reports a productive cough and subjective fevers for the past three days.",
    "Physical examination revealed decreased breath sounds at the right lung base.",
    "She was intubated for airway protection and transferred to the medical ICU.",
    "Anticoagulation with heparin was started for a newly diagnosed pulmonary embolism.",
    "Urine cultures grew Escherichia coli sensitive to ceftriaxone.",
    "The patient is alert and oriented to person, place and time.",
    "Insulin sliding scale was continued and blood glucose remained well controlled.",
    "There is mild pitting edema of both lower extremities.",
)


def read_sentences(path: str | os.PathLike) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read text file: {e}") from None
    sentences = [s.strip() for s in lines if s.strip()]
    if not sentences:
        raise CheckpointError(f"{path}: no sentences (one per line expected)")
    return sentences


def _torch_model(m):
    """BertForPreTraining in eval mode with `m`'s weights (heads checked present by the caller)."""
    import torch
    from transformers import BertConfig, BertForPreTraining
    cfg = {k: m.config[k] for k in cm.GOOGLE_CONFIG_KEYS}
    cfg.update(hidden_act=m.config["computed_activation"], layer_norm_eps=m.config["layer_norm_eps"])
    state = {k: torch.from_numpy(np.array(v)) for k, v in cm.tf_to_hf_weights(m.weights).items()}
    # from_pretrained with a state dict skips the random initialisation (seconds for BERT-Base)
    model, info = BertForPreTraining.from_pretrained(None, config=BertConfig(**cfg), state_dict=state,
                                                     output_loading_info=True)
    if info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]:
        raise CheckpointError(f"{m.path}: transformers reported weight problems: {info}")
    return model.eval()


def _tokenizer(m, do_lower_case: bool):
    from transformers import BertTokenizer
    return BertTokenizer(vocab={t: i for i, t in enumerate(m.vocab)}, do_lower_case=do_lower_case)


def text_behaviour(m, sentences: Sequence[str], do_lower_case: bool, label: str = "",
                   max_len: int = 128) -> list[dict[str, Any]]:
    """Per sentence: tokens, and for each masked position the true-token log-prob and top-5 ids;
    plus the unmasked [CLS] and mean-pooled final hidden states.

    One forward pass per token (pseudo-perplexity needs each token masked alone); the MLM
    head runs only at the masked position (the vocab projection is a quarter of BERT-Base's
    cost per position). Progress (counts only, never text) goes to stderr.
    """
    import torch
    from utils.progress import Progress
    model, tok = _torch_model(m), _tokenizer(m, do_lower_case)
    mask_id = tok.convert_tokens_to_ids("[MASK]")
    progress = Progress("sentences", total=len(sentences), label=f"text probe {label}".strip())
    results = []
    for text in sentences:
        ids = tok(text, truncation=True, max_length=max_len)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            hidden = model.bert(input_ids=x).last_hidden_state[0]
            positions = list(range(1, len(ids) - 1))
            batch = x.repeat(len(positions), 1)
            batch[torch.arange(len(positions)), torch.tensor(positions)] = mask_id
            seq = model.bert(input_ids=batch).last_hidden_state
            logits = model.cls.predictions(seq[torch.arange(len(positions)), torch.tensor(positions)])
        log_probs = torch.log_softmax(logits.double(), dim=-1)
        true = torch.tensor(ids[1:-1])
        results.append({
            "tokens": tok.convert_ids_to_tokens(ids),
            "true_logp": log_probs[torch.arange(len(positions)), true].numpy(),
            "top5": [tok.convert_ids_to_tokens(r) for r in log_probs.topk(5, dim=-1).indices.tolist()],
            "cls": hidden[0].double().numpy(), "mean": hidden.double().mean(0).numpy()})
        progress.update(1, tokens=len(positions))
    progress.done()
    return results


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def compare_text(ours, theirs, sentences: Sequence[str],
                 lower: tuple[bool | None, bool | None]) -> dict[str, Any]:
    """Behaviour metrics (see module docstring) of two compare_weights.Model objects whose
    effective casings are `lower` (None: not recorded); {'skipped': reason} when not computable."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return {"skipped": "torch/transformers not importable"}
    for name, m in (("ours", ours), ("theirs", theirs)):
        if m.config is None or m.vocab is None:
            return {"skipped": f"{name} has no {'config' if m.config is None else 'vocab'}"}
        if any(n not in m.weights for n in cm.expected_shapes(m.config)):
            return {"skipped": f"{name} lacks pretraining-head weights (MLM needs cls/*)"}
    # A TF checkpoint without training_config.json records no casing: assume the other
    # model's (or Google's default, lower-case) and say so in the report.
    la, lb = lower
    notes = []
    if la is None or lb is None:
        fallback = next((x for x in (la, lb) if x is not None), True)
        for name, x in (("ours", la), ("theirs", lb)):
            if x is None:
                notes.append(f"{name}: casing not recorded, assumed do_lower_case={fallback}")
        la, lb = (fallback if la is None else la), (fallback if lb is None else lb)
    ra, rb = text_behaviour(ours, sentences, la, "ours"), text_behaviour(theirs, sentences, lb, "theirs")
    out: dict[str, Any] = {"sentences": len(sentences), "do_lower_case": [la, lb], "notes": notes}
    for name, r in (("ours", ra), ("theirs", rb)):
        logp = np.concatenate([s["true_logp"] for s in r])
        top1 = [t5[0] == tok for s in r for t5, tok in zip(s["top5"], s["tokens"][1:-1])]
        out[name] = {"masked_tokens": int(logp.size), "mlm_accuracy": float(np.mean(top1)),
                     "pseudo_perplexity": float(np.exp(-logp.mean()))}
    same = [(a, b) for a, b in zip(ra, rb) if a["tokens"] == b["tokens"]]
    out["same_tokenization"] = len(same)
    if same:
        pairs = [(x, y) for a, b in same for x, y in zip(a["top5"], b["top5"])]
        out["top1_agreement"] = float(np.mean([x[0] == y[0] for x, y in pairs]))
        out["top5_agreement"] = float(np.mean([len(set(x) & set(y)) / 5 for x, y in pairs]))
        out["cls_cosine"] = float(np.mean([_cos(a["cls"], b["cls"]) for a, b in same]))
        out["mean_pooled_cosine"] = float(np.mean([_cos(a["mean"], b["mean"]) for a, b in same]))
    return out
