"""Task files: MedNLI jsonl and CoNLL two-column NER files (readers and writers).

Every problem names the file, the line and the field, and says what to do: the
files come from the user (credentialed releases converted by them), so a bad line is
an input error, not a bug.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from utils.atomic import atomic_open
from utils.cli import UserError, os_error_message

MEDNLI_LABELS = ("contradiction", "entailment", "neutral")
MEDNLI_FILES = {"train": "mli_train_v1.jsonl", "dev": "mli_dev_v1.jsonl", "test": "mli_test_v1.jsonl"}
NER_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
_BIO_LABEL = re.compile(r"^(O|[BI]-\S+)$")


class DataError(UserError):
    """A task file that cannot be used: the message names file, line and field."""


@dataclass(frozen=True)
class NliExample:
    pair_id: str
    sentence1: str
    sentence2: str
    label: str


@dataclass(frozen=True)
class NerSentence:
    words: tuple[str, ...]
    labels: tuple[str, ...]


def task_files(task: str, data_dir: str | os.PathLike) -> dict[str, Path]:
    """{split: path} of a task's three files in `data_dir`; refuses absent ones (all named)."""
    names = MEDNLI_FILES if task == "mednli" else NER_FILES
    folder = Path(data_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found")
    paths = {split: folder / name for split, name in names.items()}
    absent = [p.name for p in paths.values() if not p.is_file()]
    if absent:
        raise DataError(f"{folder}: missing {', '.join(absent)} (a --task {task} folder holds "
                        f"{', '.join(names.values())})")
    return paths


def _lines(path: Path):
    """(line number, text without the newline) of a UTF-8 file, errors as DataError."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for n, line in enumerate(f, 1):
                yield n, line.rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(os_error_message(e, "cannot read")) from None


def read_mednli(path: str | os.PathLike) -> list[NliExample]:
    """MedNLI as released: one JSON object per line with pairID, sentence1, sentence2, gold_label."""
    path = Path(path)
    examples = []
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {n}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}: line {n}: expected a JSON object")
        for key in ("sentence1", "sentence2", "gold_label"):
            if not isinstance(obj.get(key), str):
                raise DataError(f"{path}: line {n}: field {key!r} missing or not a string")
        if obj["gold_label"] not in MEDNLI_LABELS:
            raise DataError(f"{path}: line {n}: field 'gold_label' is {obj['gold_label']!r}; "
                            f"expected one of {', '.join(MEDNLI_LABELS)}")
        examples.append(NliExample(str(obj.get("pairID", f"line{n}")), obj["sentence1"],
                                   obj["sentence2"], obj["gold_label"]))
    if not examples:
        raise DataError(f"{path}: no examples")
    return examples


def read_conll(path: str | os.PathLike) -> list[NerSentence]:
    """CoNLL two-column NER: `token<TAB>label` per line, a blank line between sentences.

    Labels must be `O` or `B-TYPE` / `I-TYPE` (the scorer's BIO scheme).
    """
    path = Path(path)
    sentences, words, labels = [], [], []
    for n, line in _lines(path):
        if not line.strip():
            if words:
                sentences.append(NerSentence(tuple(words), tuple(labels)))
                words, labels = [], []
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0]:
            raise DataError(f"{path}: line {n}: expected two tab-separated fields (token, label), "
                            f"found {len(fields)} field(s)")
        if not _BIO_LABEL.match(fields[1]):
            raise DataError(f"{path}: line {n}: field 2 (label) {fields[1]!r} is not O, B-TYPE or I-TYPE")
        words.append(fields[0])
        labels.append(fields[1])
    if words:
        sentences.append(NerSentence(tuple(words), tuple(labels)))
    if not sentences:
        raise DataError(f"{path}: no sentences")
    return sentences


def write_conll(path: str | os.PathLike, sentences: list[NerSentence]) -> None:
    """Write sentences in the two-column format, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        for s in sentences:
            f.writelines(f"{w}\t{lab}\n" for w, lab in zip(s.words, s.labels))
            f.write("\n")


def write_predictions(path: str | os.PathLike, sentences: list[NerSentence],
                      predicted: list[list[str]]) -> None:
    """`token<TAB>gold<TAB>predicted`, a blank line between sentences, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        for s, pred in zip(sentences, predicted):
            f.writelines(f"{w}\t{g}\t{p}\n" for w, g, p in zip(s.words, s.labels, pred))
            f.write("\n")


def read_predictions(path: str | os.PathLike) -> tuple[list[list[str]], list[list[str]]]:
    """(gold, predicted) label sequences per sentence of a predictions file (ours)."""
    path = Path(path)
    gold, pred, g, p = [], [], [], []
    for n, line in _lines(path):
        if not line.strip():
            if g:
                gold.append(g)
                pred.append(p)
                g, p = [], []
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataError(f"{path}: line {n}: expected token, gold and predicted label")
        g.append(fields[1])
        p.append(fields[2])
    if g:
        gold.append(g)
        pred.append(p)
    return gold, pred
