"""The two task kinds: inputs for the model, and metrics + predictions from its outputs.

MedNLI: `[CLS] sentence1 [SEP] sentence2 [SEP]`, the pooled output -> a linear layer
(transformers' BertForSequenceClassification), accuracy. NER: windows of sub-tokens
(`windows`), one label per word on its first sub-token, exact-span micro F1 (`scorer`).
Metrics are in percent, as the paper reports them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from downstream_tasks import data, scorer, windows
from downstream_tasks.training import Example, predict_logits
from utils.atomic import atomic_open

MAX_LENGTH = 150  # FAITHFUL: the original fine-tuning scripts' max_seq_length


class MedNLI:
    """MedNLI (accuracy)."""
    name = "mednli"
    metric = "accuracy"

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.files = data.task_files("mednli", data_dir)
        self.splits = {split: data.read_mednli(path) for split, path in self.files.items()}
        self.labels = list(data.MEDNLI_LABELS)

    def counts(self) -> dict[str, int]:
        return {split: len(ex) for split, ex in self.splits.items()}

    def examples(self, tokenizer, split: str, max_length: int = MAX_LENGTH) -> list[Example]:
        # FAITHFUL: pairs longer than max_length are truncated longest-first, as BERT's
        # run_classifier._truncate_seq_pair did.
        out = []
        for ex in self.splits[split]:
            enc = tokenizer(ex.sentence1, ex.sentence2, truncation="longest_first", max_length=max_length)
            out.append(Example(enc["input_ids"], enc["token_type_ids"], self.labels.index(ex.label)))
        return out

    def evaluate(self, model, tokenizer, split: str, device, log=None) -> tuple[dict[str, float], list[str]]:
        examples = self.examples(tokenizer, split)
        predicted = [""] * len(examples)

        def each(i: int, logits: np.ndarray) -> None:
            predicted[i] = self.labels[int(np.argmax(logits))]
        predict_logits(model, examples, device, each, log, f"{self.name} {split} prediction")
        gold = [ex.label for ex in self.splits[split]]
        correct = sum(g == p for g, p in zip(gold, predicted))
        return {"accuracy": 100.0 * correct / len(gold), "examples": len(gold)}, predicted

    def write_predictions(self, path: str | os.PathLike, split: str, predicted: list[str]) -> None:
        """`pairID<TAB>gold<TAB>predicted`, one line per example."""
        with atomic_open(path, "w", encoding="utf-8") as f:
            for ex, p in zip(self.splits[split], predicted):
                f.write(f"{ex.pair_id}\t{ex.label}\t{p}\n")


class Ner:
    """CoNLL NER (exact-span micro F1)."""
    name = "ner"
    metric = "f1"

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.files = data.task_files("ner", data_dir)
        self.splits = {split: data.read_conll(path) for split, path in self.files.items()}
        # label ids from the training file; 'O' first, the rest sorted (deterministic)
        seen = {lab for s in self.splits["train"] for lab in s.labels}
        self.labels = ["O"] + sorted(seen - {"O"})

    def counts(self) -> dict[str, int]:
        return {split: len(s) for split, s in self.splits.items()}

    def _windows(self, tokenizer, split: str, max_length: int) -> list[windows.Window]:
        ids = {lab: i for i, lab in enumerate(self.labels)}
        out = []
        for n, s in enumerate(self.splits[split]):
            enc = windows.encode_words(tokenizer, s.words)
            label_ids = [ids.get(lab, -100) for lab in s.labels]  # a label unseen in training: not trained
            out.extend(windows.sentence_windows(n, enc, label_ids, tokenizer.cls_token_id,
                                                tokenizer.sep_token_id, max_length))
        return out

    def examples(self, tokenizer, split: str, max_length: int = MAX_LENGTH) -> list[Example]:
        return [Example(w.input_ids, [0] * len(w.input_ids), w.label_ids)
                for w in self._windows(tokenizer, split, max_length)]

    def evaluate(self, model, tokenizer, split: str, device, log=None,
                 max_length: int = MAX_LENGTH) -> tuple[dict[str, float], list[list[str]]]:
        sentences = self.splits[split]
        wins = self._windows(tokenizer, split, max_length)
        predicted: list[list[str | None]] = [[None] * len(s.words) for s in sentences]

        def each(i: int, logits: np.ndarray) -> None:
            w = wins[i]
            for pos, word in zip(w.score_positions, w.score_words):
                predicted[w.sentence][word] = self.labels[int(np.argmax(logits[pos]))]
        predict_logits(model, [Example(w.input_ids, [0] * len(w.input_ids), w.label_ids) for w in wins],
                       device, each, log, f"{self.name} {split} prediction (windows)")
        unscored = sum(p is None for sent in predicted for p in sent)
        if unscored:  # the windows guarantee a prediction per word: anything else is a bug
            raise AssertionError(f"{unscored} word(s) got no prediction")
        metrics = scorer.score([s.labels for s in sentences], predicted)
        return {**metrics, "sentences": len(sentences)}, predicted

    def write_predictions(self, path: str | os.PathLike, split: str, predicted: list[list[str]]) -> None:
        data.write_predictions(path, self.splits[split], predicted)


def load_task(task: str, data_dir: str | os.PathLike):
    return MedNLI(data_dir) if task == "mednli" else Ner(data_dir)


def task_name(task: str, data_dir: str | os.PathLike) -> str:
    """The name a run reports under: `mednli`, or the NER data folder's name (e.g. i2b2_2010)."""
    return "mednli" if task == "mednli" else Path(os.path.abspath(data_dir)).name


def describe(metrics: dict[str, Any], metric: str) -> str:
    return f"{metric} {metrics[metric]:.2f}"
