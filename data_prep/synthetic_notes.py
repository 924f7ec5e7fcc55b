"""Synthetic MIMIC-shaped clinical notes, for demos, tests and benchmarks.

    python -m data_prep.synthetic_notes --notes N --seed S --out FILE.csv.gz [--format mimic3|mimic4]

MIMIC notes are under a data use agreement, so the demo recipe runs on this instead.
Everything is built from templates and word lists written here; no real patient text.
What it imitates, because the downstream stages are sensitive to it:

  * the MIMIC-III v1.4 NOTEEVENTS layout: all 11 columns, quoted header, string columns
    always quoted, numbers/dates bare, TEXT with embedded newlines and `""` quotes;
  * the 15 categories in MIMIC-III v1.4 proportions (data_prep.notes.KNOWN_CATEGORIES), raw
    names with their trailing spaces, every category present whenever N >= 15;
  * layouts the section splitter keys on (section_split.sections): the discharge summary
    `Admission Date: ... Discharge Date: ...` and `Date of Birth: ... Sex: ...` lines,
    title-case headers, numbered medication lists with Disp/Refills lines, `[**...**]`
    placeholders, `___` / `---` separator runs, radiology FINAL REPORT blocks, nursing
    system lines and `-` bullets, ECG one-liners;
  * at a low rate, the list shapes that trip the original splitter: numbering that jumps
    or restarts, a line starting with a number after a list (the count overshoots: the
    faithful splitter raises and the note is dropped), "1." inside a sentence, a header
    followed by a one-line list item;
  * realistic lengths (discharge summaries ~1,500-4,000 words, ECG ~10) and a few
    ISERROR=1 rows.

`--format mimic4` writes the MIMIC-IV-Note layout instead (note_id, subject_id, hadm_id,
note_type, note_seq, charttime, storetime, text; DS/RR/AR notes; `___` de-identification).

Deterministic: the same N, seed and format give a byte-identical file (one
random.Random(seed) drives everything; gzip header mtime 0 and no file name).

Longer than the project's ~400-line guide: most of it is word lists and sentence
templates (data, one per note shape above); the generator itself is short.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import math
import random
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

from utils.atomic import atomic_open
from utils.cli import UserError, os_error_message, run_main
from utils.progress import Progress

# (raw MIMIC-III category, approximate MIMIC-III note count)
CATEGORY_COUNTS: tuple[tuple[str, int], ...] = (
    ("Nursing/other", 822_497), ("Radiology", 522_279), ("Nursing", 223_556),
    ("ECG", 209_051), ("Physician ", 141_624), ("Discharge summary", 59_652),
    ("Echo", 45_794), ("Respiratory ", 31_739), ("Nutrition", 9_418), ("General", 8_301),
    ("Rehab Services", 5_431), ("Social Work", 2_670), ("Case Management ", 967),
    ("Pharmacy", 103), ("Consult", 98),
)
MIMIC3_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME",
                  "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT")
MIMIC4_COLUMNS = ("note_id", "subject_id", "hadm_id", "note_type", "note_seq",
                  "charttime", "storetime", "text")
# MIMIC-IV-Note v2.2: ~331,794 discharge summaries, ~2,321,355 radiology reports
# (a few percent of the latter are addenda, note_type AR).
MIMIC4_TYPE_COUNTS = (("DS", 331_794), ("RR", 2_250_000), ("AR", 71_355))

ODD_LIST_RATE = 0.06      # share of lists given one of the splitter-tripping shapes
OVERSHOOT_RATE = 0.02     # per medication list: the faithful splitter then drops the note
ISERROR_RATE = 0.002      # real MIMIC-III: ~0.04 % overall, concentrated in CareVue notes

_PLACEHOLDER = re.compile(r"\[\*\*.*?\*\*\]")

# --lengths mimic3: mean words per note by category. Estimates (this project has no
# MIMIC access to measure them), chosen so that with CATEGORY_COUNTS they total the
# published ~880 M words of MIMIC-III: physician and discharge notes long, ECG short.
MIMIC3_MEAN_WORDS: dict[str, int] = {
    "Nursing/other": 220, "Radiology": 430, "Nursing": 500, "ECG": 25, "Physician ": 1500,
    "Discharge summary": 1750, "Echo": 330, "Respiratory ": 250, "Nutrition": 480,
    "General": 600, "Rehab Services": 700, "Social Work": 450, "Case Management ": 250,
    "Pharmacy": 500, "Consult": 1100,
}
LENGTH_SIGMA = 0.6              # log-normal spread of note length within a category
LONG_NOTE_RATE = 0.005          # discharge summaries drawn as 8,000-15,000 words (50-100 KB)
LONG_NOTE_WORDS = (8_000, 15_000)

# ---------------------------------------------------------------- word lists
_PROBLEMS = ["pneumonia", "congestive heart failure", "atrial fibrillation", "COPD exacerbation",
             "sepsis", "acute kidney injury", "urinary tract infection", "GI bleed",
             "hypotension", "altered mental status", "chest pain", "diabetic ketoacidosis",
             "cellulitis", "pancreatitis", "hyponatremia", "respiratory failure", "syncope",
             "NSTEMI", "cirrhosis", "pulmonary embolism", "stroke", "anemia", "delirium"]
_HISTORY = ["hypertension", "hyperlipidemia", "type 2 diabetes mellitus", "coronary artery disease",
            "CKD stage III", "hypothyroidism", "GERD", "osteoarthritis", "depression",
            "prior CVA", "peripheral vascular disease", "obstructive sleep apnea", "gout",
            "s/p CABG", "paroxysmal atrial fibrillation", "chronic low back pain", "asthma"]
_SYMPTOMS = ["shortness of breath", "fevers", "chills", "productive cough", "nausea", "vomiting",
             "abdominal pain", "dizziness", "lower extremity edema", "fatigue", "palpitations",
             "dysuria", "melena", "confusion", "weakness", "orthopnea", "diarrhea"]
_DRUGS = [("Aspirin", "81 mg", "Tablet, Chewable", "DAILY (Daily)"),
          ("Metoprolol Tartrate", "25 mg", "Tablet", "BID (2 times a day)"),
          ("Lisinopril", "10 mg", "Tablet", "DAILY (Daily)"),
          ("Atorvastatin", "40 mg", "Tablet", "DAILY (Daily)"),
          ("Furosemide", "40 mg", "Tablet", "DAILY (Daily)"),
          ("Pantoprazole", "40 mg", "Tablet, Delayed Release (E.C.)", "Q24H (every 24 hours)"),
          ("Docusate Sodium", "100 mg", "Capsule", "BID (2 times a day)"),
          ("Senna", "8.6 mg", "Tablet", "BID (2 times a day) as needed for constipation"),
          ("Warfarin", "5 mg", "Tablet", "Once Daily at 4 PM"),
          ("Levothyroxine", "50 mcg", "Tablet", "DAILY (Daily)"),
          ("Metformin", "500 mg", "Tablet", "BID (2 times a day)"),
          ("Amlodipine", "5 mg", "Tablet", "DAILY (Daily)"),
          ("Acetaminophen", "325 mg", "Tablet", "Q6H (every 6 hours) as needed for pain"),
          ("Levofloxacin", "750 mg", "Tablet", "Q24H (every 24 hours) for 5 days"),
          ("Prednisone", "10 mg", "Tablet", "DAILY (Daily)"),
          ("Insulin Lispro", "100 unit/mL", "Solution", "per sliding scale")]
_NUMBER_WORDS = ["One (1)", "Two (2)", "One (1)", "Three (3)", "One (1)"]
_FINDINGS = ["The lungs are clear without consolidation or effusion.",
             "There is mild cardiomegaly, unchanged.",
             "No pneumothorax is seen.",
             "There is a small left pleural effusion with adjacent atelectasis.",
             "The mediastinal and hilar contours are within normal limits.",
             "Endotracheal tube terminates 4 cm above the carina.",
             "There is patchy opacity at the right lung base concerning for pneumonia.",
             "Osseous structures are unremarkable.",
             "Mild pulmonary vascular congestion is present.",
             "A right internal jugular central line ends in the mid SVC.",
             "No acute intracranial hemorrhage or mass effect.",
             "The liver is normal in echotexture without focal lesion.",
             "There is no free fluid in the abdomen."]
_IMPRESSIONS = ["No acute cardiopulmonary process.", "Right lower lobe pneumonia.",
                "Mild fluid overload.", "Stable appearance of the chest.",
                "Lines and tubes in appropriate position.",
                "Small bilateral pleural effusions, increased since prior."]
_ECG = ["Sinus rhythm. Normal ECG.", "Sinus rhythm. Normal ECG. Since the previous tracing of "
        "[**{date}**] no significant change.", "Sinus tachycardia. Otherwise normal ECG.",
        "Atrial fibrillation with rapid ventricular response. Nonspecific ST-T wave changes.",
        "Sinus bradycardia. Left axis deviation. Possible old inferior myocardial infarction.",
        "Sinus rhythm. Left bundle-branch block. Compared to the previous tracing of [**{date}**] "
        "there is no change.", "Baseline artifact. Sinus rhythm. Low QRS voltages in the limb leads.",
        "Atrial paced rhythm. Prolonged QT interval. Clinical correlation is suggested."]
_SYSTEMS = {
    "Neuro": ["alert and oriented x3, MAE, follows commands.", "lethargic but arousable to voice.",
              "PERRL, moving all extremities, no focal deficits.", "sedated on propofol, RASS -2."],
    "CV": ["HR 70s-80s NSR, no ectopy noted.", "BP 110-130/60s, HR 90s ST.",
           "afib 100s, rate controlled with lopressor.", "+2 pulses, trace edema bilateral LE."],
    "Resp": ["LS clear bilaterally, O2 2L NC with sats 95-98%.", "coarse BS, suctioned for thick tan sputum.",
             "on CPAP 5/5, RR 16-20, sats > 94%.", "diminished at bases, encouraged IS use."],
    "GI": ["abd soft, NT/ND, +BS, tolerating regular diet.", "NPO for procedure, TF at goal 60 ml/hr.",
           "no BM this shift, colace given.", "abd distended, hypoactive BS."],
    "GU": ["foley draining clear yellow urine, adequate UO.", "voiding QS via urinal.",
           "UO 30-50 cc/hr, lasix given with good response.", "foley d/c'd, due to void."],
    "ID": ["afebrile, on vanco/zosyn, WBC trending down.", "Tmax 101.2, cultures sent."],
    "Skin": ["intact, turned q2h.", "stage II on coccyx, duoderm applied."],
    "Social": ["family in to visit, updated by team.", "wife called, questions answered."],
}
_NURSING_TITLES = ["NPN 7a-7p:", "Nursing Progress Note", "MICU NPN 7p-7a", "CCU Nursing Progress Note 0700-1900",
                   "NURSING PROGRESS NOTE", "Respiratory Care Note", "NPN"]
_STAFF = ["MD", "RN", "NP", "PA", "RRT", "PT", "SW", "RD"]
_SERVICES = ["MEDICINE", "SURGERY", "CARDIOTHORACIC", "NEUROLOGY", "ORTHOPAEDICS", "CSURG"]
_DISPOSITIONS = ["Home", "Home With Service", "Extended Care", "Rehab"]


class _NoteWriter:
    """Template expansion around one random.Random; every method draws from it only."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    # -- small pieces
    def date(self, year: int | None = None) -> str:
        r = self.r
        return f"{year or r.randint(2100, 2200)}-{r.randint(1, 12)}-{r.randint(1, 28)}"

    def ph_name(self) -> str:
        r = self.r
        kind = r.choice(["Known firstname", "Last Name (NamePattern1)", "First Name8 (NamePattern2)",
                         "Doctor Last Name", "Name (NI)", "Doctor First Name"])
        return f"[**{kind} {r.randint(1, 9999)}**]"

    def ph_other(self) -> str:
        r = self.r
        kind = r.choice(["Hospital1", "Hospital", "Location (un)", "Telephone/Fax (1)", "Numeric Identifier",
                         "MD Number(1)", "Apartment Address(1)", "Hospital Ward Name"])
        return f"[**{kind} {r.randint(1, 9999)}**]"

    def sentence(self) -> str:
        r = self.r
        c = r.randrange(14)
        age, sex = r.randint(19, 96), r.choice(["man", "woman", "male", "female"])
        if c == 0:
            return (f"{age} year old {sex} with history of {r.choice(_HISTORY)} and {r.choice(_HISTORY)} "
                    f"who presents with {r.randint(2, 10)} days of {r.choice(_SYMPTOMS)}.")
        if c == 1:
            return f"Patient was seen at {self.ph_other()} on [**{self.date()}**] for {r.choice(_PROBLEMS)}."
        if c == 2:
            return (f"In the ED, initial vitals were T {r.randint(97, 102)}.{r.randint(0, 9)} HR {r.randint(55, 130)} "
                    f"BP {r.randint(85, 170)}/{r.randint(45, 95)} RR {r.randint(12, 30)} O2 {r.randint(85, 100)}% RA.")
        if c == 3:
            return f"She denies {r.choice(_SYMPTOMS)}, {r.choice(_SYMPTOMS)} or {r.choice(_SYMPTOMS)}."
        if c == 4:
            return f"He was given {r.choice(_DRUGS)[0].lower()} {r.choice(_DRUGS)[1]} IV x1 with improvement."
        if c == 5:
            return (f"Labs were notable for a creatinine of {r.randint(6, 40) / 10} (baseline {r.randint(6, 15) / 10}) "
                    f"and a WBC of {r.randint(30, 250) / 10}.")
        if c == 6:
            return f"The patient was started on {r.choice(_DRUGS)[0].lower()} and {r.choice(['improved', 'remained stable', 'was monitored on telemetry'])}."
        if c == 7:
            return f"{r.choice(_PROBLEMS).capitalize()}: likely secondary to {r.choice(_PROBLEMS)}, treated with {r.choice(_DRUGS)[0].lower()}."
        if c == 8:
            return f"Dr. {self.ph_name()} from {self.ph_other()} was consulted and recommended {r.choice(['CT scan', 'MRI', 'echocardiogram', 'serial troponins', 'diuresis', 'paracentesis'])}."
        if c == 9:
            return f"Of note, the patient reports \"{r.choice(_SYMPTOMS)}\" since {r.choice(['yesterday', 'last week', 'discharge', 'the morning of admission'])}."
        if c == 10:
            finding = r.choice(_FINDINGS)
            return f"{r.choice(['CXR', 'CT head', 'KUB', 'RUQ US'])} showed {finding[0].lower()}{finding[1:]}"
        if c == 11:
            return f"Will continue {r.choice(_DRUGS)[0].lower()} and follow up {r.choice(['cultures', 'LFTs', 'electrolytes', 'INR'])} in am."
        if c == 12:
            return f"Her {r.choice(_HISTORY)} was managed with {r.choice(_DRUGS)[0].lower()} {r.choice(_DRUGS)[1]}."
        return f"He was transferred to the {r.choice(['MICU', 'CCU', 'floor', 'SICU'])} for further management."

    def sentences(self, lo: int, hi: int, odd: bool = True) -> str:
        out = [self.sentence() for _ in range(self.r.randint(lo, hi))]
        if odd and out and self.r.random() < ODD_LIST_RATE:      # "1." inside a sentence
            out[self.r.randrange(len(out))] += f" Dose was increased to 1. {self.r.randint(2, 9)} mg daily."
        return " ".join(out)

    def paragraphs(self, lo: int, hi: int, per: tuple[int, int] = (2, 6)) -> str:
        return "\n".join(self.sentences(*per) for _ in range(self.r.randint(lo, hi)))

    def numbering(self, n: int) -> list[int]:
        """1..n, or at ODD_LIST_RATE a jump (1,2,4) or a restart (1,2,1,2)."""
        nums = list(range(1, n + 1))
        if n >= 3 and self.r.random() < ODD_LIST_RATE:
            k = self.r.randrange(1, n)
            if self.r.random() < 0.5:
                nums = nums[:k] + [x + 1 for x in nums[k:]]           # jump
            else:
                nums = nums[:k] + list(range(1, n - k + 1))           # restart
        return nums

    def med_list(self, lo: int, hi: int) -> str:
        r = self.r
        lines, nums = [], self.numbering(r.randint(lo, hi))
        for num in nums:
            name, dose, form, freq = r.choice(_DRUGS)
            lines.append(f"{num}. {name} {dose} {form} Sig: {r.choice(_NUMBER_WORDS)} {form} PO {freq}.")
            if r.random() < 0.6:
                lines.append(f"Disp:*{r.choice([30, 60, 90, 14])} {form}(s)* Refills:*{r.randint(0, 3)}*")
        if r.random() < OVERSHOOT_RATE:    # "N+1 days" after item N: the count overshoots
            lines.append(f"{nums[-1] + 1} days of antibiotics remain.")
        return "\n".join(lines)

    def problem_list(self, lo: int, hi: int, words: list[str]) -> str:
        r = self.r
        style = r.randrange(3)
        nums = self.numbering(r.randint(lo, hi))
        items = [r.choice(words) for _ in nums]
        if style == 0:
            return "\n".join(f"{n}. {w}" for n, w in zip(nums, items))
        if style == 1:
            return "\n".join(f"- {w}" for w in items)
        return ", ".join(items).capitalize()

    def lengthen(self, text: str, category: str) -> str:
        """`text` continued with more of its kind up to a drawn length (--lengths mimic3).

        The target is log-normal around the category's MIMIC3_MEAN_WORDS; a share of
        discharge summaries are 50-100 KB, as the longest real ones. Added blocks are
        titled paragraphs, numbered lists and bullet lines separated by blank lines; a
        note longer than its target is cut after the line that reaches it.
        """
        r = self.r
        mean = MIMIC3_MEAN_WORDS.get(category, 400)
        if category == "Discharge summary" and r.random() < LONG_NOTE_RATE:
            target = r.randint(*LONG_NOTE_WORDS)
        else:
            target = int(r.lognormvariate(math.log(mean) - LENGTH_SIGMA ** 2 / 2, LENGTH_SIGMA))
        words = len(text.split())
        if words > target:       # cut at the end of the line that reaches the target
            lines, kept = text.split("\n"), 0
            for end, line in enumerate(lines):
                kept += len(line.split())
                if kept >= target:
                    return "\n".join(lines[:end + 1])
        blocks = [text]
        while words < target:
            kind = r.random()
            if target - words < 150:
                block = " ".join(self.sentence() for _ in range(max(1, (target - words) // 15)))
            elif kind < 0.6:
                block = f"{r.choice(_PROBLEMS).capitalize()}:\n{self.paragraphs(1, 3, (3, 8))}"
            elif kind < 0.8:
                block = f"{r.choice(['Medications:', 'Plan:', 'Problems:'])}\n{self.med_list(2, 8)}"
            else:
                system = r.choice(list(_SYSTEMS))
                block = "\n".join(f"- {system}: {r.choice(_SYSTEMS[system])}" for _ in range(r.randint(2, 6)))
            blocks.append(block)
            words += len(block.split())
        return "\n\n".join(blocks)

    # -- one function per layout
    def discharge(self) -> str:
        r = self.r
        year = r.randint(2100, 2200)
        adm, dis = f"{year}-{r.randint(1, 6)}-{r.randint(1, 28)}", f"{year}-{r.randint(7, 12)}-{r.randint(1, 28)}"
        sex = r.choice("MF")
        parts = [f"Admission Date:  [**{adm}**]              Discharge Date:   [**{dis}**]\n",
                 f"Date of Birth:  [**{self.date(year - r.randint(20, 90))}**]             Sex:   {sex}\n",
                 f"Service: {r.choice(_SERVICES)}\n",
                 "Allergies:\n" + r.choice(["Patient recorded as having No Known Allergies to Drugs",
                                            "Penicillins / Sulfa (Sulfonamide Antibiotics)", "Codeine"]) + "\n",
                 f"Attending:{self.ph_name()}.",
                 "Chief Complaint:\n" + r.choice(_SYMPTOMS) + "\n",
                 "Major Surgical or Invasive Procedure:\n" + r.choice(["None", "Cardiac catheterization",
                                                                        "Intubation", "PICC line placement"]) + "\n\n",
                 "History of Present Illness:\n" + self.paragraphs(2, 6, (4, 10)) + "\n\n",
                 "Past Medical History:\n" + self.problem_list(3, 9, _HISTORY) + "\n\n",
                 "Social History:\n" + self.sentences(1, 4) + "\n\n",
                 "Family History:\n" + r.choice(["Non-contributory.", "Father with MI at 60.", "Mother with DM2."]) + "\n\n",
                 "Physical Exam:\n" + "\n".join(f"{k}: {r.choice(v)}" for k, v in _SYSTEMS.items()
                                                 if r.random() < 0.8) + "\n\n",
                 "Pertinent Results:\n" + "\n".join(
                     f"[**{adm}**] {r.randint(1, 12):02d}:{r.randint(0, 59):02d}AM   WBC-{r.randint(30, 200) / 10} "
                     f"RBC-{r.randint(250, 550) / 100}* HGB-{r.randint(70, 160) / 10}* HCT-{r.randint(200, 480) / 10}*"
                     for _ in range(r.randint(2, 12))) + "\n" + self.sentences(2, 8) + "\n\n",
                 "Brief Hospital Course:\n" + "\n\n".join(
                     f"# {r.choice(_PROBLEMS)}: " + self.paragraphs(1, 4, (4, 12)) for _ in range(r.randint(3, 10))) + "\n\n",
                 "Medications on Admission:\n" + self.med_list(2, 12) + "\n\n",
                 "Discharge Medications:\n" + self.med_list(3, 16) + "\n\n",
                 "Discharge Disposition:\n" + r.choice(_DISPOSITIONS) + "\n\n"]
        if r.random() < 0.5:
            parts.append(f"Facility:\n{self.ph_other()} VNA\n\n")
        diagnosis = ("Discharge Diagnosis:\n1. " + r.choice(_PROBLEMS) if r.random() < ODD_LIST_RATE
                     else "Discharge Diagnosis:\nPrimary: " + r.choice(_PROBLEMS) + "\nSecondary: " + r.choice(_HISTORY))
        parts += [diagnosis + "\n\n",
                  "Discharge Condition:\n" + r.choice(["Stable", "Good", "Fair, ambulating with walker"]) + "\n\n",
                  "Discharge Instructions:\n" + self.paragraphs(1, 4, (3, 8)) + "\n\n",
                  "Followup Instructions:\n" + "\n".join(
                      f"Provider: {self.ph_name()}, MD Phone:{self.ph_other()} Date/Time:[**{dis}**] {r.randint(8, 16)}:00"
                      for _ in range(r.randint(1, 4))) + "\n\n",
                  f"                             {self.ph_name()} {self.ph_name()} MD {self.ph_other()}\n\n"
                  f"Completed by:[**{dis}**]"]
        return "\n".join(parts)

    def radiology(self) -> str:
        r = self.r
        exam = r.choice(["CHEST (PORTABLE AP)", "CT HEAD W/O CONTRAST", "CHEST (PA & LAT)",
                         "ABDOMEN U.S. (COMPLETE STUDY)", "CT CHEST W/CONTRAST"])
        bar = " " + "_" * 78
        return (f"[**{self.date()}**] {r.randint(1, 12)}:{r.randint(0, 59):02d} {r.choice(['AM', 'PM'])}\n"
                f" {exam:<60}Clip # {self.ph_other()}\n Reason: eval for {r.choice(_PROBLEMS)}\n"
                f" Admitting Diagnosis: {r.choice(_PROBLEMS).upper()}\n{bar}\n"
                f" {self.ph_other()} MEDICAL CONDITION:\n  {r.randint(19, 96)} year old {r.choice(['man', 'woman'])} "
                f"with {r.choice(_SYMPTOMS)}\n REASON FOR THIS EXAMINATION:\n  eval for {r.choice(_PROBLEMS)}\n{bar}\n"
                f"                                 FINAL REPORT\n"
                f" INDICATION: {r.choice(_SYMPTOMS).capitalize()}.\n\n"
                f" COMPARISON: {r.choice(['None.', f'[**{self.date()}**].'])}\n\n"
                f" FINDINGS: {' '.join(r.sample(_FINDINGS, r.randint(2, 7)))}\n\n"
                f" IMPRESSION: {r.choice(_IMPRESSIONS)}\n")

    def nursing_other(self) -> str:
        r = self.r
        lines = [r.choice(_NURSING_TITLES)]
        core = ["Neuro", "CV", "Resp", "GI", "GU"]
        for system in core[:r.randint(3, 5)] + [s for s in _SYSTEMS if s not in core and r.random() < 0.4]:
            lines.append(f"{system}: {r.choice(_SYSTEMS[system])}" + (" " + self.sentences(1, 4, False) if r.random() < 0.5 else ""))
        lines.append("Plan: " + r.choice(["continue to monitor.", "cont current plan of care.",
                                          "wean O2 as tolerated, f/u labs."]))
        return "\n".join(lines)

    def nursing(self) -> str:
        r = self.r
        out = []
        for _ in range(r.randint(1, 3)):
            out.append(f"{r.choice(_PROBLEMS).capitalize()}\n")
            for head in ("Assessment:", "Action:", "Response:", "Plan:"):
                bullets = "\n".join(f"- {r.choice(r.choice(list(_SYSTEMS.values())))}" for _ in range(r.randint(1, 5)))
                out.append(f"{head}\n{bullets}\n")
        if r.random() < 0.3:
            out.append("-" * r.randint(3, 40) + "\n" + self.sentences(1, 3))
        return "\n".join(out)

    def ecg(self) -> str:
        return self.r.choice(_ECG).format(date=self.date())

    def physician(self) -> str:
        r = self.r
        return (f"Chief Complaint: {r.choice(_SYMPTOMS)}\n24 Hour Events:\n{self.sentences(1, 4)}\n"
                f"Allergies:\nNo Known Drug Allergies\nLast dose of Antibiotics:\n{r.choice(_DRUGS)[0]} - "
                f"[**{self.date()}**] 08:00 PM\nFlowsheet Data as of  [**{self.date()}**] 06:00 AM\n"
                f"Vital signs\nTmax: 37.{r.randint(0, 9)}\nHR: {r.randint(55, 130)} bpm\n"
                f"Physical Examination\n" + "\n".join(f"{k}: {r.choice(v)}" for k, v in _SYSTEMS.items()) +
                "\nAssessment and Plan\n" + "\n".join(f"{r.choice(_PROBLEMS).upper()}: {self.sentences(1, 4)}"
                                                      for _ in range(r.randint(2, 8))) +
                f"\nICU Care\nNutrition: {r.choice(['NPO', 'Regular diet'])}\nCode status: Full code\n"
                f"Disposition: {r.choice(['ICU', 'Transfer to floor'])}\n")

    def echo(self) -> str:
        r = self.r
        return (f"PATIENT/TEST INFORMATION:\nIndication: {r.choice(_PROBLEMS).capitalize()}.\n"
                f"Height: (in) {r.randint(58, 76)}\nWeight (lb): {r.randint(100, 300)}\n"
                f"BP (mm Hg): {r.randint(90, 170)}/{r.randint(50, 95)}\nHR (bpm): {r.randint(50, 120)}\n"
                f"Status: Inpatient\nDate/Time: [**{self.date()}**] at {r.randint(8, 17)}:00\n"
                f"Test: TTE (Complete)\nTechnical Quality: {r.choice(['Adequate', 'Suboptimal'])}\n\n\n"
                f"INTERPRETATION:\n\nFindings:\n\nLEFT ATRIUM: Normal LA size.\n\n"
                f"LEFT VENTRICLE: Normal LV wall thickness. LVEF {r.randint(20, 70)}%.\n\n"
                f"Conclusions:\nThe left atrium is {r.choice(['normal in size', 'mildly dilated'])}. "
                f"{self.sentences(1, 4, False)}\n\nIMPRESSION: {r.choice(['Normal study.', 'Moderate MR.', 'Depressed LV function.'])}\n")

    def short_report(self, title: str, heads: tuple[str, ...]) -> str:
        r = self.r
        body = "\n".join(f"{h}\n{self.sentences(1, 5)}" if r.random() < 0.7
                         else f"{h}\n{self.problem_list(2, 6, _PROBLEMS)}" for h in heads)
        return f"{title}\n{body}\n"


def _builders(w: _NoteWriter) -> dict[str, tuple[Callable[[], str], tuple[str, ...]]]:
    """category -> (text builder, DESCRIPTION choices)."""
    short = w.short_report
    return {
        "Nursing/other": (w.nursing_other, ("Report",)),
        "Radiology": (w.radiology, ("CHEST (PORTABLE AP)", "CT HEAD W/O CONTRAST", "CHEST (PA & LAT)")),
        "Nursing": (w.nursing, ("Nursing Progress Note", "Generic Note", "Nursing Transfer Note")),
        "ECG": (w.ecg, ("Report",)),
        "Physician ": (w.physician, ("Physician Resident Progress Note", "Intensivist Note", "ICU Note - CVI")),
        "Discharge summary": (w.discharge, ("Report",) * 15 + ("Addendum",)),
        "Echo": (w.echo, ("Report",)),
        "Respiratory ": (lambda: short("Respiratory Care", ("Ventilation:", "Plan:")), ("Respiratory Care Shift Note",)),
        "Nutrition": (lambda: short("Nutrition:", ("Assessment:", "Estimated Needs:", "Recommendations:")), ("Nutrition Follow-up",)),
        "General": (lambda: short("TITLE:", ("Assessment:", "Plan:")), ("Generic Note",)),
        "Rehab Services": (lambda: short("Physical Therapy Evaluation", ("Activity Orders:", "History of Present Illness:", "Goals:")), ("Physical Therapy Evaluation",)),
        "Social Work": (lambda: short("Social Work Note", ("Psychosocial Assessment:", "Plan:")), ("Social Work Admission Note",)),
        "Case Management ": (lambda: short("Case Management Note", ("Discharge Planning:",)), ("Case Management Initial Note",)),
        "Pharmacy": (lambda: short("Pharmacy Note", ("Medications Reviewed:", "Recommendations:")), ("Pharmacy Consult",)),
        "Consult": (lambda: short("Consult Note", ("Reason for Consult:", "Recommendations:")), ("Consult Note",)),
    }


def _draw_categories(rng: random.Random, n: int, counts: tuple[tuple[str, int], ...]) -> list[str]:
    """n categories with the given weights; each appears at least once when n >= len(counts)
    (a missing one replaces, at a random position, a draw whose category is repeated)."""
    names = [c for c, _ in counts]
    cats = rng.choices(names, weights=[k for _, k in counts], k=n)
    if n >= len(names):
        seen = Counter(cats)
        for c in names:
            if not seen[c]:
                i = rng.choice([j for j, d in enumerate(cats) if seen[d] > 1])
                seen[cats[i]] -= 1
                cats[i], seen[c] = c, 1
    return cats


def _q(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def generate_mimic3(n: int, seed: int, out: io.TextIOBase, progress: Progress | None = None,
                    lengths: str = "template") -> None:
    """Write a MIMIC-III NOTEEVENTS CSV with n synthetic notes (quoted like PhysioNet's file).

    lengths="template": each note as its layout makes it (the demo's notes); "mimic3":
    continued to a length drawn from MIMIC-III's per-category distribution (rehearsals).
    """
    rng = random.Random(seed)
    w = _NoteWriter(rng)
    builders = _builders(w)
    cats = _draw_categories(rng, n, CATEGORY_COUNTS)
    force_error = rng.randrange(n) if n >= 50 else -1   # "a few ISERROR=1 rows": at least one
    out.write(",".join(_q(c) for c in MIMIC3_COLUMNS) + "\n")
    for i, cat in enumerate(cats):
        build, descriptions = builders[cat]
        text = build()
        if lengths == "mimic3":
            text = w.lengthen(text, cat)
        subject, year = rng.randint(2, 99_999), rng.randint(2100, 2200)
        day = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        outpatient = cat in ("ECG", "Radiology", "Echo") and rng.random() < 0.1
        hadm = "" if outpatient else str(rng.randint(100_000, 199_999))
        timed = cat not in ("Discharge summary", "ECG")
        charttime = f"{day} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00" if timed else ""
        caregiver = cat not in ("Discharge summary", "ECG", "Radiology", "Echo")
        storetime = charttime if caregiver else ""
        cgid = str(rng.randint(14_000, 21_000)) if caregiver else ""
        iserror = "1" if (caregiver and rng.random() < ISERROR_RATE) or i == force_error else ""
        out.write(f"{i + 1},{subject},{hadm},{day},{charttime},{storetime},{_q(cat)},"
                  f"{_q(rng.choice(descriptions))},{cgid},{iserror},{_q(text)}\n")
        if progress:
            progress.update()


def generate_mimic4(n: int, seed: int, out: io.TextIOBase, progress: Progress | None = None) -> None:
    """Write a MIMIC-IV-Note style CSV (discharge + radiology notes, `___` de-identification)."""
    rng = random.Random(seed)
    w = _NoteWriter(rng)
    writer = csv.writer(out, lineterminator="\n")     # pandas-style minimal quoting
    writer.writerow(MIMIC4_COLUMNS)
    types = _draw_categories(rng, n, MIMIC4_TYPE_COUNTS)
    for i, note_type in enumerate(types):
        subject = 10_000_000 + rng.randint(0, 9_999_999)
        if note_type == "DS":
            text = ("Name:  ___                     Unit No:   ___\n \n" + w.discharge()).replace("\n\n", "\n \n")
        else:
            text = w.radiology() if note_type == "RR" else "ADDENDUM:  " + w.sentences(1, 3, False)
        text = _PLACEHOLDER.sub("___", text)
        day = f"{rng.randint(2110, 2210)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        writer.writerow([f"{subject}-{note_type}-{i + 1}", subject, rng.randint(20_000_000, 29_999_999),
                         note_type, rng.randint(1, 40), f"{day} 00:00:00",
                         f"{day} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00", text])
        if progress:
            progress.update()


def write_synthetic_notes(path: str | Path, n: int, seed: int, fmt: str = "mimic3",
                          lengths: str = "template") -> None:
    """Write n synthetic notes to `path` (gzip when it ends in .gz), atomically and
    byte-identically for the same (n, seed, fmt, lengths)."""
    if fmt == "mimic3":
        def generate(n: int, seed: int, out: io.TextIOBase, progress: Progress) -> None:
            generate_mimic3(n, seed, out, progress, lengths=lengths)
    else:
        generate = generate_mimic4
    progress = Progress("notes", total=n, label="synthetic notes")
    with atomic_open(path, "wb") as raw:
        if str(path).endswith(".gz"):
            # filename="" and mtime=0: the gzip header carries neither name nor time.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
                with io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
                    generate(n, seed, text, progress)
        else:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            generate(n, seed, text, progress)
            text.flush()
            text.detach()      # leave `raw` open for atomic_open's fsync
    progress.done()


class SyntheticNotesError(UserError):
    """The output file cannot be written."""


def _write(args: argparse.Namespace) -> int:
    try:
        write_synthetic_notes(args.out, args.notes, args.seed, args.format, args.lengths)
    except OSError as exc:
        raise SyntheticNotesError(os_error_message(exc, f"cannot write {args.out}")) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.synthetic_notes",
                                     description="Deterministic synthetic MIMIC-shaped notes (no real text).",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--notes", type=int, required=True, help="number of notes")
    parser.add_argument("--seed", type=int, default=12345, help="random seed")
    parser.add_argument("--out", required=True, help="output CSV (.csv.gz compresses)")
    parser.add_argument("--format", choices=("mimic3", "mimic4"), default="mimic3",
                        help="MIMIC-III NOTEEVENTS or MIMIC-IV-Note layout")
    parser.add_argument("--lengths", choices=("template", "mimic3"), default="template",
                        help="note lengths: as the templates make them, or drawn from MIMIC-III's "
                             "per-category distribution incl. 50-100 KB discharge summaries "
                             "(mimic3 format only)")
    args = parser.parse_args(argv)
    if args.notes < 0:
        parser.error("--notes must be >= 0")
    if args.lengths != "template" and args.format != "mimic3":
        parser.error("--lengths mimic3 needs --format mimic3")
    return run_main("data_prep.synthetic_notes", _write, args)


if __name__ == "__main__":
    sys.exit(main())
