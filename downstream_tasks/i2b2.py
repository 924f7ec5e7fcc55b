"""Raw i2b2 / n2c2 releases -> CoNLL two-column train.tsv, dev.tsv, test.tsv.

    python -m downstream_tasks.i2b2 --year 2006|2010|2012|2014 --train FILES --test FILES \
        --output_dir DIR [--dev_fraction 0.1] [--seed 42]

FILES are comma-separated names or globs (see README, "Downstream evaluation", for the
release files of each year). What each year's converter reads, as the original
clinicalBERT preprocessing did:
  2006 de-identification: XML with inline `<PHI TYPE="...">` tags; a line of a record's
       TEXT is a sentence; label = the PHI TYPE.
  2010 concepts: `.txt` (a sentence per line, tokens separated by spaces) + `.con`
       (`c="text" LINE:TOKEN LINE:TOKEN||t="type"`); label = problem / test / treatment.
  2012 temporal: XML, TEXT in CDATA, `<EVENT start= end= type=>` character offsets;
       EVENT tags only (not TIMEX3), label = the event type; a line is a sentence.
  2014 de-identification: XML like 2012, every child of TAGS, label = its TYPE.
Words are the whitespace-separated tokens of a line, also cut where an annotation starts
or ends inside one (so every span is made of whole words).

Dev splits: the original code split 2006 by position (first 70% of the training
sentences, the rest dev: reproduced exactly) and 2012/2014 by patient with an unseeded
`np.random.permutation`, which cannot be rebuilt; here 2010, 2012 and 2014 take
`--dev_fraction` of the training patients (2010: documents) with a seeded permutation,
so the split is the same on every run. The published dev numbers are therefore not
comparable to ours; test sets are the releases' own.
"""
from __future__ import annotations

import collections
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from absl import flags

from downstream_tasks.data import NerSentence, write_conll
from utils.atomic import write_json_atomic
from utils.cli import UsageError, UserError, absl_run, os_error_message
from utils.files import expand_input_files

YEARS = (2006, 2010, 2012, 2014)
FAITHFUL_2006_TRAIN_FRACTION = 0.7


class ConversionError(UserError):
    """A raw i2b2 file that cannot be converted (names the file and line)."""


@dataclass
class Stats:
    """Per-record problems, counted and reported (never silently dropped)."""
    documents: int = 0
    sentences: int = 0
    entities: int = 0
    text_mismatches: int = 0          # annotation text differs from the text at its offsets (kept)
    overlapping_dropped: int = 0      # an annotation overlapping an earlier one (dropped, counted)
    empty_type_skipped: int = 0       # an annotation without a type (skipped, as the original)
    examples: list[str] = field(default_factory=list)  # file + annotation id, never note text

    def note(self, what: str, where: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(f"{what}: {where}")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", newline=None) as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ConversionError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConversionError(os_error_message(e, "cannot read")) from None


# ----------------------------------------------------------------------------- words and labels

def line_words(line: str, spans: Sequence[tuple[int, int, str, bool]]) -> NerSentence:
    """Words and BIO labels of one line from character spans (start, end, type, continues)
    within it; `continues` marks a span that began on an earlier line (its words are I-)."""
    cuts = sorted({p for s, e, _, _ in spans for p in (s, e)})
    words, labels = [], []
    for m in re.finditer(r"\S+", line):
        a, b = m.start(), m.end()
        inner = [c for c in cuts if a < c < b]
        for x, y in zip([a] + inner, inner + [b]):
            label = "O"
            for s, e, type_, continues in spans:
                if s <= x and y <= e:
                    label = ("I-" if continues or x > s else "B-") + type_
                    break
            words.append(line[x:y])
            labels.append(label)
    return NerSentence(tuple(words), tuple(labels))


def document_sentences(text: str, entities: Iterable[tuple[int, int, str, str]], where: str,
                       stats: Stats) -> list[NerSentence]:
    """A document's lines as sentences, from character-offset entities (start, end, type, id)
    over `text`; overlapping entities keep the earlier (longer on ties), the rest counted."""
    kept: list[tuple[int, int, str]] = []
    for start, end, type_, ent_id in sorted(entities, key=lambda e: (e[0], -(e[1] - e[0]))):
        if kept and start < kept[-1][1]:
            stats.overlapping_dropped += 1
            stats.note("overlapping annotation dropped", f"{where} {ent_id}")
            continue
        kept.append((start, end, type_))
    stats.entities += len(kept)
    sentences, offset, k = [], 0, 0
    for line in text.split("\n"):
        end_of_line = offset + len(line)
        while k < len(kept) and kept[k][1] <= offset:
            k += 1
        spans, j = [], k
        while j < len(kept) and kept[j][0] < end_of_line:
            s, e, type_ = kept[j]
            spans.append((max(s, offset) - offset, min(e, end_of_line) - offset, type_, s < offset))
            j += 1
        sentence = line_words(line, spans)
        if sentence.words:
            sentences.append(sentence)
        offset = end_of_line + 1
    stats.documents += 1
    stats.sentences += len(sentences)
    return sentences


def _check_text(text: str, start: int, end: int, expected: str, where: str, stats: Stats) -> None:
    if " ".join(text[start:end].split()) != " ".join(expected.split()):
        stats.text_mismatches += 1
        stats.note("annotation text differs from the text at its offsets", where)


# ----------------------------------------------------------------------------- the four years

_PHI = re.compile(r'<PHI TYPE="([^"]*)">(.*?)</PHI>', re.S)
_RECORD = re.compile(r'<RECORD ID="([^"]*)">\s*<TEXT>(.*?)</TEXT>', re.S)


def read_2006(path: str, stats: Stats) -> dict[str, list[NerSentence]]:
    """{record id: sentences} of an i2b2 2006 de-id XML file (inline PHI tags).

    # DEVIATION: the original split lines on spaces only and special-cased a PHI glued to
    # a neighbour (`<PHI>01/01</PHI>/1995` gave `01/01` and `1995`, dropping the `/`, and
    # only the PHI's first word was kept there); here the cut at the PHI's boundary keeps
    # every character: `01/01`, `/1995`.
    """
    raw = _read(path)
    records = {}
    for m in _RECORD.finditer(raw):
        text, entities, last = [], [], 0
        body = m.group(2)
        for n, phi in enumerate(_PHI.finditer(body)):
            text.append(body[last:phi.start()])
            start = sum(map(len, text))
            text.append(phi.group(2))
            entities.append((start, start + len(phi.group(2)), phi.group(1), f"PHI #{n + 1}"))
            last = phi.end()
        text.append(body[last:])
        records[m.group(1)] = document_sentences("".join(text), entities, f"{path} record {m.group(1)}", stats)
    if not records:
        raise ConversionError(f"{path}: no <RECORD ID=...><TEXT> element (not an i2b2 2006 de-id file)")
    return records


_CONCEPT = re.compile(r'^c="(.*)" (\d+):(\d+) (\d+):(\d+)\|\|t="([^"]*)"\s*$')


def read_2010(txt_path: str, con_path: str, stats: Stats) -> list[NerSentence]:
    """Sentences of one i2b2 2010 document (.txt + .con, token offsets)."""
    lines = _read(txt_path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    tokens = [line.split() for line in lines]
    # FAITHFUL: the original shifted token positions by one on lines that start with a
    # space (the annotation tool counted an empty first token there).
    shift = [-1 if line.startswith(" ") else 0 for line in lines]
    labels = [["O"] * len(t) for t in tokens]
    for n, line in enumerate(_read(con_path).split("\n"), 1):
        if not line.strip():
            continue
        m = _CONCEPT.match(line.strip())
        if not m:
            raise ConversionError(f"{con_path}: line {n}: not a concept line "
                                  '(c="text" LINE:TOKEN LINE:TOKEN||t="type")')
        text, l1, t1, l2, t2, type_ = m.group(1), *map(int, m.group(2, 3, 4, 5)), m.group(6)
        if not (1 <= l1 <= l2 <= len(tokens)):
            raise ConversionError(f"{con_path}: line {n}: line number {l1 if l1 > len(tokens) else l2} "
                                  f"outside {txt_path} ({len(tokens)} lines)")
        first, last = t1 + shift[l1 - 1], t2 + shift[l2 - 1]
        if not (0 <= first < len(tokens[l1 - 1]) and 0 <= last < len(tokens[l2 - 1])) or \
                (l1 == l2 and last < first):
            raise ConversionError(f"{con_path}: line {n}: token position outside line {l1 if l1 == l2 else f'{l1}-{l2}'}")
        if l1 == l2 and " ".join(tokens[l1 - 1][first:last + 1]).lower() != " ".join(text.split()).lower():
            stats.text_mismatches += 1
            stats.note("concept text differs from the tokens at its position", f"{con_path} line {n}")
        span = [(ln, i) for ln in range(l1 - 1, l2) for i in range(len(tokens[ln]))
                if (ln, i) >= (l1 - 1, first) and (ln, i) <= (l2 - 1, last)]
        if any(labels[ln][i] != "O" for ln, i in span):
            stats.overlapping_dropped += 1
            stats.note("overlapping concept dropped", f"{con_path} line {n}")
            continue
        for k, (ln, i) in enumerate(span):
            labels[ln][i] = ("B-" if k == 0 else "I-") + type_
        stats.entities += 1
    sentences = [NerSentence(tuple(t), tuple(lab)) for t, lab in zip(tokens, labels) if t]
    stats.documents += 1
    stats.sentences += len(sentences)
    return sentences


_CDATA = re.compile(r"<TEXT><!\[CDATA\[(.*?)\]\]></TEXT>", re.S)
_TAGS = re.compile(r"<TAGS>(.*?)</TAGS>", re.S)
_TAG = re.compile(r"<(\w+)\s+([^<>]*?)/?>")
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def read_offset_xml(path: str, year: int, stats: Stats) -> list[NerSentence]:
    """Sentences of one i2b2 2012 (EVENT) or 2014 (all PHI tags) XML file."""
    raw = _read(path)
    text_m, tags_m = _CDATA.search(raw), _TAGS.search(raw)
    if not text_m or not tags_m:
        raise ConversionError(f"{path}: no <TEXT><![CDATA[...]]></TEXT> and <TAGS> (not an i2b2 {year} XML file)")
    text = text_m.group(1)
    entities = []
    for tag in _TAG.finditer(tags_m.group(1)):
        name, attrs = tag.group(1), dict(_ATTR.findall(tag.group(2)))
        if year == 2012 and name != "EVENT":
            continue
        type_ = (attrs.get("type") if year == 2012 else attrs.get("TYPE")) or ""
        line_no = raw.count("\n", 0, tags_m.start(1) + tag.start()) + 1  # small files: cheap
        where = f"{path} line {line_no} ({name} {attrs.get('id', '')})"
        try:
            start, end = int(attrs["start"]), int(attrs["end"])
        except (KeyError, ValueError):
            raise ConversionError(f"{path}: line {line_no}: {name} tag without integer start/end") from None
        if not 0 <= start < end <= len(text):
            raise ConversionError(f"{path}: line {line_no}: {name} offsets {start}-{end} outside the "
                                  f"text ({len(text)} characters)")
        if not type_.strip():
            stats.empty_type_skipped += 1  # FAITHFUL: the original skipped annotations without a type
            continue
        _check_text(text, start, end, attrs.get("text", ""), where, stats)
        entities.append((start, end, type_, where))
    return document_sentences(text, entities, path, stats)


# ----------------------------------------------------------------------------- documents and splits

def patient_of(path: str, year: int) -> str:
    """The patient a file belongs to (splits keep a patient's records together):
    2012 `NNN.xml`, 2014 `NNN-RR.xml` (first three characters), 2010: the document."""
    stem = Path(path).stem
    return stem[:3] if year == 2014 else stem


def read_documents(year: int, files: Sequence[str], stats: Stats) -> dict[str, list[NerSentence]]:
    """{document or patient key: sentences, in file order} of the given raw files."""
    docs: dict[str, list[NerSentence]] = collections.OrderedDict()
    if year == 2006:
        for path in files:
            for rec, sentences in read_2006(path, stats).items():
                docs[f"{Path(path).name}:{rec}"] = sentences
        return docs
    if year == 2010:
        txt = {Path(f).stem: f for f in files if f.endswith(".txt")}
        con = {Path(f).stem: f for f in files if f.endswith(".con")}
        unpaired = sorted(set(txt) ^ set(con))
        if unpaired:
            raise ConversionError(f"i2b2 2010: {len(unpaired)} document(s) without both .txt and .con, "
                                  f"e.g. {unpaired[0]} (pass both folders' files)")
        for stem in sorted(txt):
            docs[stem] = read_2010(txt[stem], con[stem], stats)
        return docs
    for path in sorted(files, key=lambda p: Path(p).name):
        if not path.endswith(".xml"):
            raise ConversionError(f"{path}: i2b2 {year} input must be .xml files")
        docs.setdefault(patient_of(path, year), []).extend(read_offset_xml(path, year, stats))
    return docs


def split_train_dev(year: int, docs: dict[str, list[NerSentence]], dev_fraction: float,
                    seed: int) -> tuple[list[NerSentence], list[NerSentence], list[str]]:
    """(train, dev, dev patient keys)."""
    if year == 2006:
        # FAITHFUL: the original cut the sentence list at 70% (its random.seed(555) was
        # never used), so this split is exactly the original's.
        sentences = [s for ss in docs.values() for s in ss]
        cut = int(FAITHFUL_2006_TRAIN_FRACTION * len(sentences))
        return sentences[:cut], sentences[cut:], []
    # DEVIATION: the original permuted patients with an unseeded np.random.permutation;
    # a seeded permutation of the sorted keys makes the split reproducible.
    keys = sorted(docs)
    order = list(np.random.RandomState(seed).permutation(len(keys)))
    n_train = int(len(keys) * (1 - dev_fraction))
    train_keys = sorted(keys[i] for i in order[:n_train])
    dev_keys = sorted(keys[i] for i in order[n_train:])
    return [s for k in train_keys for s in docs[k]], [s for k in dev_keys for s in docs[k]], dev_keys


def convert(year: int, train_files: Sequence[str], test_files: Sequence[str], output_dir: str | os.PathLike,
            dev_fraction: float = 0.1, seed: int = 42) -> dict[str, object]:
    """Write train.tsv, dev.tsv, test.tsv and conversion.json; return the summary."""
    if year not in YEARS:
        raise UsageError(f"--year {year}: expected one of {', '.join(map(str, YEARS))}")
    if not 0 < dev_fraction < 1:
        raise UsageError(f"--dev_fraction {dev_fraction}: must be between 0 and 1")
    train_stats, test_stats = Stats(), Stats()
    train_docs = read_documents(year, train_files, train_stats)
    test_docs = read_documents(year, test_files, test_stats)
    train, dev, dev_keys = split_train_dev(year, train_docs, dev_fraction, seed)
    test = [s for ss in test_docs.values() for s in ss]
    for name, part in (("train", train), ("dev", dev), ("test", test)):
        if not part:
            raise ConversionError(f"i2b2 {year}: the {name} split is empty (too few documents for "
                                  f"--dev_fraction {dev_fraction}?)")
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, part in (("train", train), ("dev", dev), ("test", test)):
            write_conll(out / f"{name}.tsv", part)
        summary = {"year": year, "seed": seed, "dev_fraction": dev_fraction,
                   "sentences": {"train": len(train), "dev": len(dev), "test": len(test)},
                   "dev_documents": dev_keys, "train_input": train_stats.__dict__,
                   "test_input": test_stats.__dict__}
        write_json_atomic(out / "conversion.json", summary)
    except OSError as e:
        raise ConversionError(os_error_message(e, "cannot write")) from None
    for name, s in (("train", train_stats), ("test", test_stats)):
        problems = {k: v for k, v in s.__dict__.items()
                    if k in ("text_mismatches", "overlapping_dropped", "empty_type_skipped") and v}
        print(f"i2b2 {year} {name}: {s.documents} documents, {s.sentences} sentences, {s.entities} "
              f"entities" + (f"; {problems} (see {out / 'conversion.json'})" if problems else ""),
              file=sys.stderr)
    return summary


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise UsageError(f"unexpected argument(s): {' '.join(argv[1:])}")
    F = flags.FLAGS
    for flag in ("year", "train", "test", "output_dir"):
        if getattr(F, flag) is None:
            raise UsageError(f"--{flag} is required")
    convert(F.year, expand_input_files(F.train, "--train"), expand_input_files(F.test, "--test"),
            F.output_dir, F.dev_fraction, F.seed)


def define_flags() -> None:
    flags.DEFINE_integer("year", None, "i2b2 challenge year: 2006, 2010, 2012 or 2014.")
    flags.DEFINE_string("train", None, "Comma-separated training files or globs (2010: the .txt and .con files).")
    flags.DEFINE_string("test", None, "Comma-separated test files or globs (2010: the .txt and .con files).")
    flags.DEFINE_string("output_dir", None, "Folder for train.tsv, dev.tsv, test.tsv, conversion.json.")
    flags.DEFINE_float("dev_fraction", 0.1, "Share of training patients held out as dev (2010/2012/2014).")
    flags.DEFINE_integer("seed", 42, "Seed of the dev split's permutation (2010/2012/2014).")


if __name__ == "__main__":
    define_flags()
    absl_run("downstream_tasks.i2b2", main)
