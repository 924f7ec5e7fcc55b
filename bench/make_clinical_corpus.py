"""Deterministic clinical-style pretraining corpus for benchmarks (no real patient data).

One sentence per line, a blank line between notes, like the sentence files the pipeline
feeds to create_pretraining_data. Vocabulary and shapes imitate MIMIC notes (de-identified
placeholders, vitals, labs, medication lists, abbreviations); about 1 line in 40 carries
non-ASCII (°, µ, accents, dashes, non-breaking spaces) so the exact tokenizer path is
exercised too.

    python -m bench.make_clinical_corpus OUT.txt [--docs 8000] [--seed 0]
"""
from __future__ import annotations

import argparse
import random

from utils.atomic import atomic_open

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


def make_corpus(num_docs: int = 8000, seed: int = 0) -> str:
    """The corpus text (~1.25 kB per document on average)."""
    r = random.Random(seed)
    docs = []
    for _ in range(num_docs):
        docs.append("\n".join(_sentence(r) for _ in range(r.randint(4, 33))))
    return "\n\n".join(docs) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--docs", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    with atomic_open(a.output, "w", encoding="utf-8") as f:
        f.write(make_corpus(a.docs, a.seed))


if __name__ == "__main__":
    main()
