"""data_prep.synthetic_notes: determinism, MIMIC shape, read back by iter_notes."""
from __future__ import annotations

import gzip
import re
from collections import Counter

import pytest

from data_prep.notes import KNOWN_CATEGORIES, iter_notes
from data_prep.synthetic_notes import CATEGORY_COUNTS, main, write_synthetic_notes

# section_split.sections step 2: the discharge summary's first two header lines
ADMISSION = re.compile(r"Admission Date: (.*) Discharge Date: (.*)")
BIRTH = re.compile(r"Date of Birth: (.*) Sex: (.*)")


@pytest.fixture(scope="module")
def notes_3000(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "notes.csv.gz"
    write_synthetic_notes(path, 3000, seed=7)
    return path, list(iter_notes(path))


def test_same_seed_byte_identical_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz", tmp_path / "c.csv.gz"
    assert main(["--notes", "200", "--seed", "5", "--out", str(a)]) == 0
    assert main(["--notes", "200", "--seed", "5", "--out", str(b)]) == 0
    assert main(["--notes", "200", "--seed", "6", "--out", str(c)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert a.read_bytes()[4:8] == b"\0\0\0\0"          # gzip mtime 0


def test_plain_csv_equals_gzip_content(tmp_path):
    write_synthetic_notes(tmp_path / "n.csv", 50, seed=1)
    write_synthetic_notes(tmp_path / "n.csv.gz", 50, seed=1)
    assert (tmp_path / "n.csv").read_bytes() == gzip.decompress((tmp_path / "n.csv.gz").read_bytes())
    assert not list(tmp_path.glob(".*tmp-*"))        # atomic writes leave no temp files


@pytest.mark.parametrize("n,seed", [(15, 0), (15, 1), (16, 2), (40, 3)])
def test_every_category_present_from_15_notes(tmp_path, n, seed):
    path = tmp_path / "n.csv"
    write_synthetic_notes(path, n, seed)
    notes = list(iter_notes(path))
    assert len(notes) == n
    assert set(note.category for note in notes) == set(KNOWN_CATEGORIES)


def test_read_back_mimic3_shape(notes_3000):
    path, notes = notes_3000
    with gzip.open(path, "rt", encoding="utf-8") as f:
        header = f.readline()
    assert header == ('"ROW_ID","SUBJECT_ID","HADM_ID","CHARTDATE","CHARTTIME","STORETIME",'
                      '"CATEGORY","DESCRIPTION","CGID","ISERROR","TEXT"\n')
    assert [n.row_id for n in notes] == [str(i) for i in range(1, 3001)]
    counts = Counter(n.category for n in notes)
    assert set(counts) == set(KNOWN_CATEGORIES)           # raw names incl. trailing spaces
    # proportions follow MIMIC-III: the four big categories in their real order
    # (Nursing 223k and ECG 209k are too close to keep their order in a small sample)
    assert [c for c, _ in counts.most_common(2)] == [c for c, _ in CATEGORY_COUNTS[:2]]
    assert {c for c, _ in counts.most_common(4)} == {c for c, _ in CATEGORY_COUNTS[:4]}
    assert 0.30 < counts["Nursing/other"] / 3000 < 0.50
    assert 1 <= sum(n.iserror for n in notes) <= 30
    assert all(n.text and n.invalid_utf8 == 0 for n in notes)


def test_layouts_and_lengths(notes_3000):
    _, notes = notes_3000
    by_cat: dict[str, list[str]] = {}
    for n in notes:
        by_cat.setdefault(n.category, []).append(n.text)
    for text in by_cat["Discharge summary"]:
        blocks = text.split("\n\n")
        assert ADMISSION.match(blocks[0]) and BIRTH.match(blocks[1])
        for header in ("Chief Complaint:", "History of Present Illness:", "Past Medical History:",
                       "Medications on Admission:", "Discharge Medications:",
                       "Discharge Disposition:", "Followup Instructions:"):
            assert f"\n{header}\n" in text
        assert re.search(r"\n\d+\. \w.* Sig: .*\nDisp:\*\d+ .*\* Refills:\*\d\*", text)
        assert 1000 < len(text.split()) < 6000
    for text in by_cat["Radiology"]:
        assert all(k in text for k in ("FINAL REPORT", "INDICATION:", "FINDINGS:", "IMPRESSION:", "_____"))
    assert all(len(t.split()) < 25 for t in by_cat["ECG"])
    assert all(re.search(r"^(Neuro|CV|Resp|GI|GU): ", t, re.M) for t in by_cat["Nursing/other"])
    assert any("\n- " in t for t in by_cat["Nursing"])
    assert all(re.search(r"\[\*\*[^\]]+\*\*\]", t) for t in by_cat["Discharge summary"])


def test_splitter_tripping_shapes_occur_rarely(notes_3000):
    _, notes = notes_3000
    ds = [n.text for n in notes if n.category == "Discharge summary"]
    # "N+1 days ..." right after list item N (and its Disp line): the count overshoots
    tails = [m for t in ds for m in re.finditer(
        r"\n(\d+)\. [^\n]*(?:\nDisp:[^\n]*)?\n(\d+) days of antibiotics remain\.", t)]
    assert all(int(m.group(2)) == int(m.group(1)) + 1 for m in tails)
    overshoot = len(tails)
    inline_one = sum(" 1. " in t for t in ds)
    one_item = sum("Discharge Diagnosis:\n1. " in t for t in ds)
    assert 0 < overshoot < len(ds) / 2 and 0 < inline_one < len(ds) and 0 < one_item < len(ds) / 2


def test_mimic4_format_read_back(tmp_path):
    path = tmp_path / "discharge.csv.gz"
    assert main(["--notes", "300", "--seed", "2", "--format", "mimic4", "--out", str(path)]) == 0
    with gzip.open(path, "rt") as f:
        assert f.readline() == "note_id,subject_id,hadm_id,note_type,note_seq,charttime,storetime,text\n"
    notes = list(iter_notes(path))
    assert len(notes) == 300
    assert set(n.category for n in notes) == {"Discharge summary", "Radiology"}
    assert all(re.fullmatch(r"\d{8}-(DS|RR|AR)-\d+", n.row_id) for n in notes)
    assert not any("[**" in n.text for n in notes) and all("___" in n.text for n in notes
                                                           if n.category == "Discharge summary")


def test_list_numbering_jumps_and_restarts_at_low_rate():
    import random
    from data_prep.synthetic_notes import ODD_LIST_RATE, _NoteWriter
    w = _NoteWriter(random.Random(0))
    draws = [w.numbering(5) for _ in range(4000)]
    jumps = sum(d != [1, 2, 3, 4, 5] and d == sorted(set(d)) for d in draws)
    restarts = sum(d != sorted(d) for d in draws)
    assert all(d[0] == 1 and len(d) == 5 for d in draws)
    assert 0 < jumps and 0 < restarts
    assert abs((jumps + restarts) / 4000 - ODD_LIST_RATE) < 0.02


def test_cli_bad_output_path(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--notes", "5", "--out", str(blocker / "sub" / "n.csv.gz")]) == 1
    assert "synthetic_notes: error: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--notes", "-1", "--out", str(tmp_path / "n.csv")])


def test_mimic3_lengths_follow_the_category_means_with_long_discharge_summaries(tmp_path):
    from data_prep.synthetic_notes import MIMIC3_MEAN_WORDS
    path = tmp_path / "n.csv.gz"
    assert main(["--notes", "4000", "--seed", "3", "--out", str(path), "--lengths", "mimic3"]) == 0
    words: dict[str, list[int]] = {}
    for note in iter_notes(path):
        words.setdefault(note.category, []).append(len(note.text.split()))
    # the real mix of categories, and a mean length per category near MIMIC-III's
    assert set(words) == set(KNOWN_CATEGORIES)
    for category in ("Nursing/other", "Radiology", "Nursing", "Physician "):
        mean = sum(words[category]) / len(words[category])
        assert 0.8 < mean / MIMIC3_MEAN_WORDS[category] < 1.25, (category, mean)
    assert 15 < sum(words["ECG"]) / len(words["ECG"]) < 40
    # overall ~423 words per note, as 880 M words / 2.08 M notes
    total = sum(sum(v) for v in words.values()) / sum(len(v) for v in words.values())
    assert 360 < total < 500
    # same arguments, same bytes; the default (template) lengths are unchanged
    again = tmp_path / "again.csv.gz"
    assert main(["--notes", "4000", "--seed", "3", "--out", str(again), "--lengths", "mimic3"]) == 0
    assert again.read_bytes() == path.read_bytes()


def test_mimic3_lengths_need_the_mimic3_format(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--notes", "5", "--out", str(tmp_path / "n.csv"), "--format", "mimic4", "--lengths", "mimic3"])
    assert exit_info.value.code == 2 and "--lengths mimic3 needs --format mimic3" in capsys.readouterr().err


def test_some_discharge_summaries_are_50_to_100_kb():
    import random
    from data_prep.synthetic_notes import LONG_NOTE_RATE, _NoteWriter
    writer = _NoteWriter(random.Random(11))
    sizes = [len(writer.lengthen(writer.discharge(), "Discharge summary").encode()) for _ in range(2000)]
    long = [s for s in sizes if s > 50_000]
    assert 0.3 * LONG_NOTE_RATE * 2000 <= len(long) <= 3 * LONG_NOTE_RATE * 2000
    assert max(long) <= 110_000 and min(long) >= 45_000
