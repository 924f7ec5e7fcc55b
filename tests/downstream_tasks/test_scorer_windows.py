"""The span scorer against seqeval 1.2.2 on random cases; windows cover every word."""
from __future__ import annotations

import random

import pytest

from downstream_tasks import scorer, windows


def test_known_case() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-MISC", "I-MISC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-MISC", "O"]]
    s = scorer.score(gold, pred)  # 1 of 3 predicted entities right, 1 of 3 gold found
    assert s["precision"] == pytest.approx(100 / 3) and s["recall"] == pytest.approx(100 / 3)
    assert s["f1"] == pytest.approx(100 / 3)
    assert scorer.entities(["I-X", "I-X", "I-Y", "B-Y", "O"]) == {("X", 0, 1), ("Y", 2, 2), ("Y", 3, 3)}
    assert scorer.score([["O"]], [["O"]])["f1"] == 0.0  # nothing to find: 0, as seqeval


@pytest.mark.parametrize("labels", [
    ("O", "B-A", "I-A", "B-B", "I-B"),                                  # BIO, two types
    ("O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"),      # IOBES prefixes, default mode
    ("O", "I-A", "I-B", "B-A"),                                         # I- starts, type changes
])
def test_equals_seqeval_on_random_cases(labels) -> None:
    import warnings
    from seqeval.metrics import f1_score, precision_score, recall_score
    rng = random.Random(len(labels))
    for _ in range(150):
        lengths = [rng.randint(1, 12) for _ in range(rng.randint(1, 6))]
        gold = [[rng.choice(labels) for _ in range(n)] for n in lengths]
        pred = [[g if rng.random() < 0.6 else rng.choice(labels) for g in sent] for sent in gold]
        ours = scorer.score(gold, pred)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # seqeval warns on undefined precision/recall
            assert ours["f1"] == pytest.approx(100 * f1_score(gold, pred), abs=1e-9)
            assert ours["precision"] == pytest.approx(100 * precision_score(gold, pred), abs=1e-9)
            assert ours["recall"] == pytest.approx(100 * recall_score(gold, pred), abs=1e-9)


def test_window_spans_cover_and_overlap() -> None:
    assert windows.window_spans(5, 8, 4) == [(0, 5)]
    spans = windows.window_spans(21, 8, 4)
    assert spans == [(0, 8), (4, 12), (8, 16), (12, 20), (13, 21)]
    for n in range(1, 60):
        spans = windows.window_spans(n, 8, 4)
        owners = [windows.owning_window(p, spans) for p in range(n)]
        assert all(spans[o][0] <= p < spans[o][1] for p, o in enumerate(owners))
        assert all(e - s <= 8 for s, e in spans)


class _Tok:
    """A tokenizer stand-in: every word is len(word) sub-tokens (ids 10..), '' gives none."""
    unk_token_id, cls_token_id, sep_token_id = 1, 2, 3

    def __call__(self, words, add_special_tokens=False):
        return {"input_ids": [[10 + i for i in range(len(w))] for w in words]}


def test_every_word_scored_exactly_once() -> None:
    rng = random.Random(3)
    for _ in range(40):
        words = ["x" * rng.randint(0, 4) for _ in range(rng.randint(1, 60))]  # '' -> [UNK]
        enc = windows.encode_words(_Tok(), words)
        assert len(enc.word_starts) == len(words)
        label_ids = list(range(len(words)))
        wins = windows.sentence_windows(0, enc, label_ids, 2, 3, max_length=12)
        scored = sorted(w for win in wins for w in win.score_words)
        assert scored == list(range(len(words)))  # every word once
        for win in wins:
            assert len(win.input_ids) <= 12 and win.input_ids[0] == 2 and win.input_ids[-1] == 3
            for pos, word in zip(win.score_positions, win.score_words):
                assert win.label_ids[pos] == label_ids[word]  # the first sub-token carries the label


def test_linear_warmup_then_decay() -> None:
    from downstream_tasks.training import linear_schedule
    steps, warmup = 100, 10  # 10% warmup, as BERT's fine-tuning recipe
    factors = [linear_schedule(s, steps, warmup) for s in range(steps)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[55] == pytest.approx(0.5)
    assert factors[99] == pytest.approx(1 / 90) and max(factors) == 1.0


def test_paper_preset_grid_and_selection() -> None:
    from downstream_tasks import run
    grid = run.PRESETS["paper"]["ner"]
    assert len(grid) == 18 and {s.epochs for s in grid} == {2, 3, 4}
    assert {s.learning_rate for s in grid} == {2e-5, 3e-5, 5e-5} and {s.batch_size for s in grid} == {16, 32}
    assert len(run.PRESETS["paper"]["mednli"]) == 18 and {s.epochs for s in run.PRESETS["paper"]["mednli"]} == {3, 4, 5}
    units = [{"dev": {"f1": 80.0}, "k": 0}, {"dev": {"f1": 82.0}, "k": 1}, {"dev": {"f1": 82.0}, "k": 2}]
    assert run.best_by_dev(units, "f1")["k"] == 1  # the best dev score; ties: the first in grid order
