"""Deterministic clinical-style pretraining text (no real patient data), for benchmarks
and tests of the TFRecord stage.

One sentence per line, a blank line between documents: the shape of the sentence files
the pipeline feeds to create_pretraining_data (data_prep.synthetic_notes makes the notes
CSV the earlier stages read; this skips those stages). Vocabulary and shapes imitate
MIMIC notes (de-identified placeholders, vitals, labs, medication lists, abbreviations);
about 1 line in 40 carries non-ASCII (°, µ, accents, dashes, non-breaking spaces) so the
exact tokenizer path is exercised too.

    python -m data_prep.synthetic_corpus OUT.txt [--docs 8000] [--seed 0]
    python -m data_prep.synthetic_corpus OUT.txt --mb 1000     # ~1 GB, streamed to disk

`--mb` writes documents until the file holds at least that many megabytes (10^6 bytes);
the first N documents are the same as `--docs N` gives for the same seed.
"""
from __future__ import annotations

import argparse
import itertools
import random
import sys
from typing import Iterator

from utils.atomic import atomic_open
from utils.cli import UserError, os_error_message, run_main
from utils.progress import Progress

_AGES = range(18, 99)
_SEX = ["M", "F", "male", "female", "man", "woman"]
_PROBLEMS = ["CHF", "COPD", "DM2", "HTN", "CKD", "CAD", "AFib", "DKA", "PNA", "UTI", "sepsis",
             "GI bleed", "ESRD", "cirrhosis", "pancreatitis", "stroke", "PE", "DVT", "MI",
             "hypotension", "hyperkalemia", "hyponatremia", "anemia", "delirium", "AKI"]
_UNITS = ["MICU", "SICU", "CCU", "CSRU", "TSICU", "floor", "ED", "OR", "PACU"]
_MEDS = ["Lisinopril", "Metoprolol", "Furosemide", "Heparin", "Warfarin", "Insulin", "Aspirin",
         "Atorvastatin", "Vancomycin", "Piperacillin-Tazobactam", "Oxycodone", "Acetaminophen",
         "Pantoprazole", "Levothyroxine", "Amiodarone", "Prednisone", "Albuterol", "Docusate"]
_FREQ = ["daily", "BID", "TID", "QID", "q6h", "q8h", "PRN", "QHS", "(2 times a day)",
         "(3 times a day)", "once a day"]
_ROUTES = ["PO", "IV", "SC", "IM", "NG", "PR", "inh"]
_LABS = ["WBC", "Hgb", "Hct", "Plt", "Na", "K", "Cl", "HCO3", "BUN", "Cr", "Glu", "Ca", "Mg",
         "Phos", "INR", "PTT", "Lactate", "Trop-T", "CK-MB", "ALT", "AST", "AlkPhos", "TBili"]
_FINDINGS = ["No acute intracranial hemorrhage", "Mild cardiomegaly", "Small bilateral pleural effusions",
             "Interval improvement of the right lower lobe opacity", "No pneumothorax",
             "Endotracheal tube terminates 4 cm above the carina", "Moderate pulmonary edema",
             "Unchanged position of the left subclavian central line", "Patchy bibasilar atelectasis"]
_VERBS = ["admitted", "transferred", "evaluated", "seen", "intubated", "extubated", "diuresed",
          "started on", "continued on", "weaned off", "transfused"]
_NON_ASCII = ["Temp 38.2 °C", "dose 50 µg", "café-au-lait spots", "Pt reports naïve use",
              "BP 120/80 – stable", "follow up with Dr. Müller", "Na\u00a0138", "O₂ sat 94%",
              "résumé of events", "≥ 2 episodes", "señor speaks Spanish", "pain 3–4/10"]


def _sentence(r: random.Random) -> str:
    kind = r.randrange(12)
    if kind == 0:
        return (f"Pt is a {r.choice(_AGES)} yo {r.choice(_SEX)} w/ h/o {r.choice(_PROBLEMS)} and "
                f"{r.choice(_PROBLEMS)} who was {r.choice(_VERBS)} in {r.choice(_UNITS)} for "
                f"{r.choice(_PROBLEMS)}.")
    if kind == 1:
        return (f"{r.randint(1, 20)}. {r.choice(_MEDS)} {r.choice([5, 10, 20, 25, 40, 81, 500])} mg "
                f"Tablet Sig: One (1) Tablet {r.choice(_ROUTES)} {r.choice(_FREQ)}.")
    if kind == 2:
        labs = " ".join(f"{r.choice(_LABS)}-{r.uniform(0.1, 200):.1f}{r.choice(['', '*'])}"
                        for _ in range(r.randint(3, 9)))
        return f"[{r.randint(2100, 2200)}-{r.randint(1, 12)}-{r.randint(1, 28)} 0{r.randint(1, 9)}:30AM BLOOD] {labs}"
    if kind == 3:
        return f"{r.choice(_FINDINGS)} ."
    if kind == 4:
        return (f"Seen and examined by Dr. [**Doctor Last Name {r.randint(1, 9999)}**], plan "
                f"discussed with {r.choice(['family', 'patient', 'HCP', 'team'])} at bedside.")
    if kind == 5:
        return (f"VS: T {r.uniform(96, 103):.1f} HR {r.randint(50, 140)} BP {r.randint(80, 190)}/"
                f"{r.randint(40, 110)} RR {r.randint(10, 35)} O2 sat {r.randint(85, 100)}% on "
                f"{r.choice(['RA', '2L NC', '4L NC', 'NRB', 'CPAP', 'vent'])}")
    if kind == 6:
        return (f"{r.choice(['Past Medical History', 'Social History', 'Family History'])}: "
                f"{r.choice(_PROBLEMS)}, {r.choice(_PROBLEMS)}, s/p {r.choice(['CABG', 'PCI', 'TKA', 'CCY', 'appy'])}")
    if kind == 7:
        return (f"Plan: {r.choice(['continue', 'hold', 'restart', 'titrate', 'discontinue'])} "
                f"{r.choice(_MEDS).lower()}, {r.choice(['monitor', 'trend', 'recheck'])} "
                f"{r.choice(_LABS)} in AM, {r.choice(['PT/OT consult', 'f/u cultures', 'NPO after MN', 'advance diet as tolerated'])}.")
    if kind == 8:
        return r.choice(_NON_ASCII) + "." if r.random() < 0.3 else (
            f"The patient tolerated the procedure well and was transferred to the {r.choice(_UNITS)} in stable condition.")
    if kind == 9:
        return (f"Discharge Condition: {r.choice(['stable', 'good', 'fair'])}. Follow-up with "
                f"{r.choice(['PCP', 'cardiology', 'nephrology', 'hepatology'])} in {r.randint(1, 6)} weeks.")
    if kind == 10:
        return (f"{r.choice(['Sputum', 'Blood', 'Urine'])} culture {r.choice(['positive', 'negative', 'pending'])}"
                f" for {r.choice(['MRSA', 'E. coli', 'Klebsiella', 'C. diff', 'VRE'])}; "
                f"ID following, on {r.choice(_MEDS)} day {r.randint(1, 14)}/{r.randint(7, 21)}.")
    return (f"Assessment and plan: {r.randint(40, 95)} y/o with {r.choice(_PROBLEMS)} "
            f"complicated by {r.choice(_PROBLEMS)}, now {r.choice(['improving', 'worsening', 'unchanged'])}.")


def iter_documents(seed: int = 0) -> Iterator[str]:
    """An endless, deterministic stream of documents (~1.25 kB each on average)."""
    r = random.Random(seed)
    while True:
        yield "\n".join(_sentence(r) for _ in range(r.randint(4, 33)))


def make_corpus(num_docs: int = 8000, seed: int = 0) -> str:
    """The corpus text of the first `num_docs` documents."""
    return "\n\n".join(itertools.islice(iter_documents(seed), num_docs)) + "\n"


def write_corpus(path: str, num_docs: int | None = None, megabytes: float | None = None,
                 seed: int = 0) -> tuple[int, int]:
    """Stream `num_docs` documents, or documents until `megabytes` MB, to `path`
    (atomically, in bounded memory); returns (documents, bytes)."""
    limit = None if megabytes is None else int(megabytes * 1e6)
    progress = Progress("documents", label="synthetic_corpus")
    docs = size = 0
    with atomic_open(path, "w", encoding="utf-8") as f:
        for doc in iter_documents(seed):
            if (num_docs is not None and docs >= num_docs) or (limit is not None and size >= limit):
                break
            text = ("\n\n" if docs else "") + doc
            f.write(text)
            docs += 1
            n = len(text.encode("utf-8")) if not text.isascii() else len(text)
            size += n
            progress.update(1)
        f.write("\n")
    progress.done()
    return docs, size + 1


class SyntheticCorpusError(UserError):
    """The output file cannot be written."""


def _write(args: argparse.Namespace) -> int:
    num_docs = args.docs if args.docs is not None or args.mb is not None else 8000
    try:
        docs, size = write_corpus(args.output, num_docs, args.mb, args.seed)
    except OSError as exc:
        raise SyntheticCorpusError(os_error_message(exc, f"cannot write {args.output}")) from None
    print(f"{args.output}: {docs:,} documents, {size / 1e6:,.1f} MB")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_prep.synthetic_corpus",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--docs", type=int, default=None, help="number of documents (default 8000)")
    ap.add_argument("--mb", type=float, default=None, help="write at least this many MB instead")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.docs is not None and args.mb is not None:
        ap.error("give --docs or --mb, not both")
    return run_main("data_prep.synthetic_corpus", _write, args)


if __name__ == "__main__":
    sys.exit(main())
