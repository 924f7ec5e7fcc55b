"""section_split.split_sections against the original's outputs and its rules (the numbered
steps in section_split/sections.py's docstring)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from section_split import SectionSplitError, split_sections
from section_split.sections import is_inline_title, is_title

# The golden file was made from these files, in this order, empty cells skipped.
PUBLIC_NOTES = (("aci_bench_train.csv", "note"), ("mtsamples_subset_322rows.csv", "transcription"),
                ("mts_dialog_train.csv", "section_text"))


def notes_in_golden_order(public_notes: Path):
    """(file name, text) of every public note in golden order. csv, not pandas: the
    mtsamples subset ends inside a quoted field, which csv reads leniently as the original did."""
    for name, column in PUBLIC_NOTES:
        with open(public_notes / name, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get(column):
                    yield name, row[column]


def test_matches_every_golden_entry(golden_sections, public_notes):
    notes = list(notes_in_golden_order(public_notes))
    assert len(notes) == len(golden_sections["results"]) == 1586
    mismatches = []
    golden = zip(golden_sections["sources"], golden_sections["results"])
    for i, ((name, text), (source, expected)) in enumerate(zip(notes, golden)):
        assert name == source, f"entry {i}: note from {name}, golden from {source}"
        try:
            got = split_sections(text)
        except SectionSplitError:
            got = "ERROR"
        if got != expected:
            mismatches.append(i)
    assert mismatches == [], f"{len(mismatches)} of {len(notes)} golden entries differ: {mismatches[:20]}"


def test_is_title():
    assert is_title("Past Medical History:")
    assert is_title("History of Present Illness:")          # of/on/or may be lower case
    assert is_title("Pertinent Results (labs):")            # (...) groups are ignored
    assert not is_title("Disp:")                            # the original's special case
    assert not is_title("Patient is stable:")               # a lower-case word
    assert not is_title("Allergies")                        # no colon
    assert is_inline_title("Allergies: none")
    assert not is_inline_title("Allergies:none")            # needs ": "
    assert not is_inline_title("Disp: 30 tablets")


DISCHARGE = ("Admission Date:  [**2151-7-16**]       Discharge Date:   [**2151-8-4**]\nService: X\n\n"
             "Date of Birth:  [**2080-1-4**]             Sex:   F\n\n"
             "Service: MEDICINE\n\nAllergies:\nPenicillin\n\n"
             "HISTORY OF PRESENT ILLNESS:  He is a 76 yo man -- with chest pain.\n\n"
             "Discharge Medications:\n1. Aspirin 81 mg daily.\n2. Lisinopril 10 mg daily.\n"
             "Disp:*30 Tablet(s)* Refills:*2*\n\nFollowup Instructions:\n___\n")


def test_discharge_summary_layout():
    # Header lines split into title/value pairs which step 7 glues back ("Sex:" + "F");
    # "Service: X" after the admission line is lost (rest of that block, step 2);
    # "___" becomes the "_____" marker; under "Discharge Medications:" the list item
    # "1. Aspirin ..." is a one-liner between a title and a non-title: dropped (bug 2).
    assert split_sections(DISCHARGE) == [
        "Admission Date: [**2151-7-16**]", "Discharge Date: [**2151-8-4**]",
        "Date of Birth: [**2080-1-4**]", "Sex: F", "Service: MEDICINE", "Allergies: Penicillin",
        "HISTORY OF PRESENT ILLNESS: He is a 76 yo man -- with chest pain.",
        "Discharge Medications:",
        "2. Lisinopril 10 mg daily.\nDisp:*30 Tablet(s)* Refills:*2*",
        "Followup Instructions: _____"]


def test_fix_keeps_the_dropped_one_liner():
    # Known bug 2: "Penicillin" follows a title, is one line, and the next segment is
    # not a title, so the original drops it; fixed mode keeps it as its own segment.
    text = "Allergies:\nPenicillin\n\nHe was given\nfluids."
    assert split_sections(text) == ["Allergies:", "He was given\nfluids."]
    assert split_sections(text, fix_known_bugs=True) == ["Allergies:", "Penicillin", "He was given\nfluids."]
    # When the next segment is a title (or there is none) both modes glue it on.
    assert split_sections("Allergies:\nPenicillin") == ["Allergies: Penicillin"]
    assert split_sections("Allergies:\nPenicillin", fix_known_bugs=True) == ["Allergies: Penicillin"]
    assert "1. Aspirin 81 mg daily." in split_sections(DISCHARGE, fix_known_bugs=True)


def test_fix_escapes_the_enumeration_dot():
    # Known bug 1: with the dot unescaped, "\n3 " counts as item "3." so n = 3, but
    # only two "\n<digits>." items exist: the third search finds nothing and the
    # original raised (note dropped). Escaped, n = 2: the two items split, and the
    # last item keeps the following line.
    text = "Plan:\n1. Rest\n2. Fluids\n3 days of follow up."
    with pytest.raises(SectionSplitError, match="overshoots"):
        split_sections(text)
    assert split_sections(text, fix_known_bugs=True) == ["Plan:", "1. Rest", "2. Fluids\n3 days of follow up."]
    # "\n2)" also matches the unescaped "\n\s*2." -> overshoot; fixed: no list of two.
    with pytest.raises(SectionSplitError):
        split_sections("Meds\n1. a\n2) b")
    assert split_sections("Meds\n1. a\n2) b", fix_known_bugs=True) == ["Meds", "1. a\n2) b"]


def test_enumeration_without_item_one_keeps_the_added_newline():
    # The number found is 0 and "\n0." exists but "\n1." does not: n = 0 < 1, so the
    # segment is kept with the "\n" the original prepended (step 5).
    assert split_sections("Counts\n0. none") == ["\nCounts\n0. none"]


def test_admission_line_alone_raises():
    # The original indexed segments[0] after consuming the only block: IndexError.
    with pytest.raises(SectionSplitError):
        split_sections("Admission Date: [**2151-7-16**] Discharge Date: [**2151-8-4**]")


def test_separators_and_inline_titles():
    # 3+ dashes become a "-----" marker segment; "Name: value" lines start segments;
    # a whitespace-only block becomes "" (length checked before the strip, step 3).
    assert split_sections("Some text\n------\nmore text\nBP: 120/80\nHR: 70") == [
        "Some text", "-----", "more text", "BP: 120/80", "HR: 70"]
    assert split_sections("a\n\n  \n\nb") == ["a", "", "b"]
