"""section_split.linear_pysbd: pysbd's exact sentences and spans, in linear time."""
from __future__ import annotations

import csv
import random
import re

import pysbd
import pytest

from section_split import linear_pysbd
from section_split.linear_pysbd import LinearSegmenter, _has_border, _markers_across_break

# Fragments that exercise every rule rewritten in linear_pysbd (abbreviations in all
# cases, the brace look-behind, list items with periods / parentheses / letters / roman
# numerals, quotes, repeated and self-overlapping sentences, whitespace runs).
_FRAGMENTS = [
    "Dr. Smith saw him.", "dr. jones is here.", "He is. She is.", "IS. It is fine.", "e.g. this",
    "i.e. that", "No. 5 was given.", "no. 7", "pp. 3-4.", "St. Mary's.", "Mr. X arrived.",
    "{dr} Xray.", "{is} Done.", "Fig. 2 shows it.", "U.S. Army.", "a.m. Then", "at 3 p.m. He left.",
    "1. Aspirin daily.", "2. Lisinopril.", "3. Metoprolol.", "1) first", "2) second", "3) third",
    "a. alpha", "b. beta", "c. gamma", "a) one", "b) two", "(c) three", "i. one", "ii. two",
    "iii) three", "x. ten", "Stable.", "Stable.", "aa.", "aa. aa.", "No change.", "Pt is ok!!!",
    "What?", "\"Quoted (paren) text\" here.", "(unclosed paren", "'single' quote.", "...", "Wait...",
    "[**Hospital1 18**]", "[**Name 12**] Hosp.", "T 98.6 HR 80.", "v. 2", "vs. placebo",
    "for 3♨ a", "☝", "♨", "∯", "ȸ", "5.2 mg.", "Jan. 3.", "Sec. 4 Dr. A", "Ph.D. Prof. B.",
]
_SEPARATORS = [" ", " ", " ", "  ", "\n", "\n\n", " \n", "\t", "\r\n", ""]


def _random_text(rng: random.Random, pieces: int) -> str:
    return "".join(rng.choice(_FRAGMENTS) + rng.choice(_SEPARATORS) for _ in range(pieces))


def _spans(segmenter, text):
    return [(s.sent, s.start, s.end) for s in segmenter.segment(text)]


@pytest.fixture(scope="module")
def segmenters():
    return LinearSegmenter(), pysbd.Segmenter(language="en", clean=False, char_span=True)


def test_same_spans_as_pysbd_on_random_texts(segmenters):
    ours, theirs = segmenters
    rng = random.Random(20261129)
    differ = []
    for i in range(250):
        text = _random_text(rng, rng.randint(1, 120))
        if _spans(ours, text) != _spans(theirs, text):
            differ.append(i)
    assert differ == []


@pytest.mark.slow
def test_same_spans_as_pysbd_on_real_and_synthetic_text(segmenters, golden_sections, public_notes):
    from data_prep.synthetic_notes import _NoteWriter
    ours, theirs = segmenters
    texts = [s for r in golden_sections["results"] if r != "ERROR" for s in r]
    with open(public_notes / "mtsamples_subset_322rows.csv", newline="", encoding="utf-8") as f:
        texts += [r["transcription"] for r, _ in zip(csv.DictReader(f), range(15))]
    w = _NoteWriter(random.Random(3))
    texts += [w.discharge() for _ in range(5)] + [w.nursing() for _ in range(5)]
    # every golden section (3,182: no golden note is ERROR), 15 MTSamples notes, 10 synthetic
    assert len(texts) == 3182 + 15 + 10
    assert [i for i, t in enumerate(texts) if _spans(ours, t) != _spans(theirs, t)] == []


def test_markers_across_break_equals_the_regex():
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice("ab☝\r\n ") for _ in range(rng.randint(0, 14)))
        expected = bool(re.search("☝.+\n.+☝|☝.+\r.+☝", text))
        assert _markers_across_break(text, "☝") == expected, repr(text)


def test_has_border():
    assert [_has_border(s) for s in ("abcab", "aa", "abc", "a", "abab", "Stable.")] == \
        [True, True, False, False, True, False]


def _characters_scanned(monkeypatch, text: str) -> int:
    """Characters handed to module-level regular-expression calls while segmenting `text` (a machine-independent measure of the work done)."""
    scanned = [0]

    def counting(fn, string_at):
        def wrapper(*args, **kwargs):
            scanned[0] += len(args[string_at])
            return fn(*args, **kwargs)
        return wrapper

    fake_re = type("re", (), {name: staticmethod(counting(getattr(re, name), 2 if name == "sub" else 1))
                              for name in ("sub", "search", "findall", "finditer", "match", "split")})
    fake_re.escape, fake_re.IGNORECASE = staticmethod(re.escape), re.IGNORECASE
    import pysbd.abbreviation_replacer
    import pysbd.lists_item_replacer
    import pysbd.processor
    import pysbd.utils
    for module in (linear_pysbd, pysbd.abbreviation_replacer, pysbd.lists_item_replacer,
                   pysbd.processor, pysbd.utils):
        monkeypatch.setattr(module, "re", fake_re)
    LinearSegmenter().segment(text)
    monkeypatch.undo()
    return scanned[0]


def test_work_is_linear_in_segment_length(monkeypatch):
    # One single-line segment of realistic prose (every sentence holds an abbreviation
    # such as "is"), doubled: the characters scanned by regular expressions double too
    # (pysbd itself: x4, one pass over the line per abbreviation occurrence).
    rng = random.Random(1)
    prose = [f for f in _FRAGMENTS if "\n" not in f and "☝" not in f and "♨" not in f]
    unit = " ".join(rng.choice(prose) for _ in range(400))
    small, large = unit * 4, unit * 8                # ~18 KB and ~36 KB, no newline
    ratio = _characters_scanned(monkeypatch, large) / _characters_scanned(monkeypatch, small)
    assert 1.8 < ratio < 2.3
