"""Exact-span micro precision / recall / F1 over all entity types.

Identical to `seqeval.metrics` in its default mode (seqeval 1.2.2, `mode=None`,
`suffix=False`: the conlleval chunking rules, which also accept IOBES prefixes and
start a new entity on a type change after an I- tag). Reimplemented so that the
per-sentence counts needed by the bootstrap in `compare` come from the same code, and
tested against seqeval on random label sequences.
"""
from __future__ import annotations

from typing import Sequence


def _split(label: str) -> tuple[str, str]:
    """(tag, type) as seqeval reads a label: first character, and what follows `X-`."""
    return label[0], label[1:].split("-", maxsplit=1)[-1] or "_"


def _ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def entities(labels: Sequence[str]) -> set[tuple[str, int, int]]:
    """{(type, first index, last index)} of one sentence's label sequence."""
    found = set()
    prev_tag, prev_type, begin = "O", "", 0
    for i, label in enumerate(list(labels) + ["O"]):
        tag, type_ = _split(label)
        if _ends(prev_tag, tag, prev_type, type_):
            found.add((prev_type, begin, i - 1))
        if _starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return found


def sentence_counts(gold: Sequence[str], predicted: Sequence[str]) -> tuple[int, int, int]:
    """(true positives, predicted entities, gold entities) of one sentence."""
    g, p = entities(gold), entities(predicted)
    return len(g & p), len(p), len(g)


def prf(tp: float, n_pred: float, n_gold: float) -> dict[str, float]:
    """Precision, recall and F1 in percent (0 where undefined, as seqeval)."""
    precision = 100.0 * tp / n_pred if n_pred else 0.0
    recall = 100.0 * tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def score(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision / recall / F1 (percent) of per-sentence label sequences."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    tp = n_pred = n_gold = 0
    for g, p in zip(gold, predicted):
        if len(g) != len(p):
            raise ValueError(f"sentence of {len(g)} gold labels but {len(p)} predicted")
        a, b, c = sentence_counts(g, p)
        tp, n_pred, n_gold = tp + a, n_pred + b, n_gold + c
    return {**prf(tp, n_pred, n_gold), "entities_gold": n_gold, "entities_predicted": n_pred}
