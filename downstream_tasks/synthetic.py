"""Tiny synthetic files in MedNLI's and each raw i2b2 release's format (never real notes).

    python -m downstream_tasks.synthetic --output_dir DIR [--seed 0]

Writes DIR/mednli/ (mli_{train,dev,test}_v1.jsonl) and DIR/raw/i2b2_{2006,2010,2012,2014}/
{train,test}/ in the releases' layouts, plus DIR/expected/i2b2_<year>_{train,test}.tsv: the
CoNLL sentences a correct converter must produce (before the dev split). The tests run
the converters on these end to end; the demo uses them as stand-in data.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Sequence

from absl import flags

from downstream_tasks.data import NerSentence, write_conll
from utils.cli import UsageError, absl_run

# A sentence is a list of segments (text, entity type or None, glued to the previous segment).
Segment = tuple[str, "str | None", bool]
FILLS = {
    "PATIENT": ["John Smith", "Mary Jones", "Ana Ruiz"], "DOCTOR": ["Dr. Lee", "Peter Brown"],
    "HOSPITAL": ["General Hospital", "Saint Mary Clinic"], "DATE": ["01/02/2003", "March 3", "2067-05-03"],
    "AGE": ["67", "45"], "PHONE": ["555-0100"], "ID": ["12345678"],
    "problem": ["chest pain", "pneumonia", "acute renal failure"], "test": ["chest x-ray", "a CT scan"],
    "treatment": ["aspirin", "intravenous antibiotics"],
    "PROBLEM": ["fever", "shortness of breath"], "TEST": ["blood cultures", "an echocardiogram"],
    "TREATMENT": ["heparin", "insulin"], "OCCURRENCE": ["admitted", "discharged"],
    "EVIDENTIAL": ["reports", "denies"], "CLINICAL_DEPT": ["the ICU", "cardiology"],
}
TEMPLATES = {
    2006: [["Patient", "{PATIENT}", "was seen by", "{DOCTOR}", "at", "{HOSPITAL}", "."],
           ["Admitted on", "{DATE}", ", age", "{AGE}", "."], ["Call", "{PHONE}", "about record", "{ID}", "."],
           ["No complaints today ."]],
    2010: [["The patient had", "{problem}", "and", "{test}", "was normal ."],
           ["Started on", "{treatment}", "for", "{problem}", "."], ["Follow up in two weeks ."]],
    2012: [["She was", "{OCCURRENCE}", "with", "{PROBLEM}", "."],
           ["He", "{EVIDENTIAL}", "{PROBLEM}", "after", "{TREATMENT}", "."],
           ["Transferred to", "{CLINICAL_DEPT}", "for", "{TEST}", "."], ["Stable overnight ."]],
    2014: [["Patient", "{PATIENT}", "seen by", "{DOCTOR}", "on", "{DATE}", "."],
           ["Age", "{AGE}", ", phone", "{PHONE}", "."], ["Lungs clear ."]],
}


def _sentence(rng: random.Random, template: Sequence[str], glue_ok: bool) -> list[Segment]:
    segments: list[Segment] = []
    for part in template:
        if part.startswith("{"):
            type_ = part[1:-1]
            segments.append((rng.choice(FILLS[type_]), type_, False))
        else:
            glued = glue_ok and part.startswith(",")  # "Jan 1," style: punctuation on the entity
            segments.append((part, None, glued))
    return segments


def render(segments: Sequence[Segment]) -> tuple[str, list[tuple[int, int, str]]]:
    """(text, [(start, end, type)]) of a sentence."""
    text, spans = "", []
    for seg, type_, glued in segments:
        if text and not glued:
            text += " "
        if type_:
            spans.append((len(text), len(text) + len(seg), type_))
        text += seg
    return text, spans


def expected(segments: Sequence[Segment]) -> NerSentence:
    """The CoNLL sentence a converter must produce (glued punctuation becomes its own word)."""
    words, labels = [], []
    for seg, type_, glued in segments:
        parts = seg.split()
        if glued and not type_ and words:
            first = parts[0].split(",", 1)
            parts = [","] + ([first[1]] if first[1] else []) + parts[1:]
        words += parts
        labels += ["O"] * len(parts) if not type_ else [f"B-{type_}"] + [f"I-{type_}"] * (len(parts) - 1)
    return NerSentence(tuple(words), tuple(labels))


def documents(year: int, n_docs: int, rng: random.Random) -> list[list[list[Segment]]]:
    return [[_sentence(rng, rng.choice(TEMPLATES[year]), year != 2010) for _ in range(rng.randint(3, 6))]
            for _ in range(n_docs)]


def write_2006(path: Path, docs) -> None:
    out = ["<ROOT>"]
    for n, doc in enumerate(docs, 1):
        out += [f'<RECORD ID="{n}">', "<TEXT>"]
        for sent in doc:
            text, pos = "", 0
            plain, spans = render(sent)
            for s, e, type_ in spans:
                text += plain[pos:s] + f'<PHI TYPE="{type_}">{plain[s:e]}</PHI>'
                pos = e
            out.append(text + plain[pos:])
        out += ["</TEXT>", "</RECORD>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out + ["</ROOT>"]) + "\n", encoding="utf-8")


def write_2010(folder: Path, docs, prefix: str) -> None:
    (folder / "txt").mkdir(parents=True, exist_ok=True)
    (folder / "concept").mkdir(parents=True, exist_ok=True)
    for n, doc in enumerate(docs):
        lines, concepts = [], []
        for ln, sent in enumerate(doc, 1):
            lead = " " if ln == 2 else ""  # the release's leading-space lines (shifted positions)
            tokens = 0
            for seg, type_, _ in sent:
                k = len(seg.split())
                if type_:
                    a, b = tokens + len(lead), tokens + k - 1 + len(lead)
                    concepts.append(f'c="{seg.lower()}" {ln}:{a} {ln}:{b}||t="{type_}"')
                tokens += k
            lines.append(lead + " ".join(seg for seg, _, _ in sent))
        (folder / "txt" / f"{prefix}-{n:03d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / "concept" / f"{prefix}-{n:03d}.con").write_text("\n".join(concepts) + "\n", encoding="utf-8")


def _offset_xml(root: str, docs_text: str, tags: list[str]) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8" ?>\n<{root}>\n<TEXT><![CDATA[{docs_text}]]></TEXT>\n'
            "<TAGS>\n" + "\n".join(tags) + f"\n</TAGS>\n</{root}>\n")


def write_offset_xml(folder: Path, docs, year: int, first_patient: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, doc in enumerate(docs):
        text, tags = "\n", []
        for sent in doc:
            plain, spans = render(sent)
            for s, e, type_ in spans:
                start, end = len(text) + s, len(text) + e
                if year == 2012:
                    tags.append(f'<EVENT id="E{len(tags)}" start="{start}" end="{end}" text="{plain[s:e]}" '
                                f'modality="FACTUAL" polarity="POS" type="{type_}" />')
                else:
                    kind = "NAME" if type_ in ("PATIENT", "DOCTOR") else type_
                    tags.append(f'<{kind} id="P{len(tags)}" start="{start}" end="{end}" text="{plain[s:e]}" '
                                f'TYPE="{type_}" comment="" />')
            text += plain + "\n"
        if year == 2012:  # what the converter must ignore: TIMEX3, TLINK, an EVENT without a type
            tags += ['<TIMEX3 id="T0" start="1" end="3" text="x" type="DATE" val="2010" mod="NA" />',
                     '<TLINK id="TL0" fromID="E0" fromText="x" toID="T0" toText="x" type="BEFORE" />',
                     f'<EVENT id="E99" start="1" end="3" text="{text[1:3]}" modality="FACTUAL" polarity="POS" type="" />']
        name = f"{first_patient + n}.xml" if year == 2012 else f"{first_patient + n // 2}-{n % 2 + 1:02d}.xml"
        root = "ClinicalNarrativeTemporalAnnotation" if year == 2012 else "deIdi2b2"
        (folder / name).write_text(_offset_xml(root, text, tags), encoding="utf-8")


MEDNLI_FINDINGS = ["pneumonia", "a fever", "chest pain", "diabetes", "hypertension", "a rash", "anemia"]


def write_mednli(folder: Path, sizes: dict[str, int], rng: random.Random) -> None:
    """Pairs whose label follows from the words (learnable by a tiny model in a few steps)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        lines = []
        for i in range(n):
            finding, other = rng.sample(MEDNLI_FINDINGS, 2)
            label = rng.choice(["entailment", "contradiction", "neutral"])
            s2 = {"entailment": f"The patient has {finding}.", "contradiction": f"The patient has no {finding}.",
                  "neutral": f"The patient may develop {other} later."}[label]
            lines.append(json.dumps({"sentence1": f"Patient admitted with {finding}.", "pairID": f"{split}-{i}",
                                     "sentence2": s2, "gold_label": label}))
        (folder / f"mli_{split}_v1.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(output_dir: str | os.PathLike, seed: int = 0, docs_per_split: int = 6,
             mednli_sizes: dict[str, int] | None = None) -> Path:
    """Write every synthetic file under `output_dir`; return it."""
    out = Path(output_dir)
    rng = random.Random(seed)
    write_mednli(out / "mednli", mednli_sizes or {"train": 96, "dev": 32, "test": 32}, rng)
    for year in (2006, 2010, 2012, 2014):
        raw = out / "raw" / f"i2b2_{year}"
        for split, first in (("train", 100), ("test", 500)):
            docs = documents(year, docs_per_split, rng)
            if year == 2006:
                write_2006(raw / split / f"deid_surrogate_{split}.xml", docs)
            elif year == 2010:
                write_2010(raw / split, docs, split)
            else:
                write_offset_xml(raw / split, docs, year, first)
            write_conll(out / "expected" / f"i2b2_{year}_{split}.tsv",
                        [expected(s) for doc in _file_order(year, docs, first) for s in doc])
    return out


def _file_order(year: int, docs, first: int):
    """Documents in the order the converter reads them (by file name)."""
    if year in (2012, 2014):
        names = [f"{first + n}.xml" if year == 2012 else f"{first + n // 2}-{n % 2 + 1:02d}.xml"
                 for n in range(len(docs))]
        return [d for _, d in sorted(zip(names, docs), key=lambda x: x[0])]
    return docs


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise UsageError(f"unexpected argument(s): {' '.join(argv[1:])}")
    if not flags.FLAGS.output_dir:
        raise UsageError("--output_dir is required")
    print(generate(flags.FLAGS.output_dir, flags.FLAGS.seed))


def define_flags() -> None:
    flags.DEFINE_string("output_dir", None, "Folder to write the synthetic files into.")
    flags.DEFINE_integer("seed", 0, "Seed of the generator.")


if __name__ == "__main__":
    define_flags()
    absl_run("downstream_tasks.synthetic", main)
