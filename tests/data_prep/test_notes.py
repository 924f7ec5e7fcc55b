"""data_prep.notes: MIMIC-III / MIMIC-IV readers, bad input, corpus selection."""
from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path

import pandas as pd
import pytest

from data_prep.notes import (KNOWN_CATEGORIES, Note, NotesInputError, category_file_name,
                             corpus_selector, iter_notes)

MIMIC3 = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME",
          "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT"]
MIMIC4 = ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
          "storetime", "text"]

# (category, iserror, text): embedded newlines, quotes, commas, CRLF, empty text.
ROWS = [
    ("Discharge summary", "", 'Admission Date:  [**2151-7-16**]   Discharge Date:   [**2151-8-4**]\n\n'
                              'He said "no", then ""yes"".\nDisp:*30 Tablet(s)* Refills:*2*\n'),
    ("Physician ", "1", "line one,\r\nline two, with comma"),
    ("Nursing/other", "", ""),
    ("Respiratory ", "", '"quoted from start" and end "'),
    ("ECG", "", "Sinus rhythm. Normal ECG."),
]


def _mimic3_rows(rows=ROWS) -> list[list[str]]:
    return [[str(i + 1), "10", "", "2151-08-04", "", "", cat, "Report", "", err, text]
            for i, (cat, err, text) in enumerate(rows)]


def _write_csv(path: Path, header: list[str], rows: list[list[str]], gz: bool = False) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(header)
    writer.writerows(rows)
    data = buf.getvalue().encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _expected(rows=ROWS) -> list[Note]:
    return [Note(str(i + 1), cat, text or None, err == "1", 0) for i, (cat, err, text) in enumerate(rows)]


@pytest.mark.parametrize("gz", [False, True])
def test_mimic3_upper_case(tmp_path, gz):
    path = _write_csv(tmp_path / ("n.csv.gz" if gz else "n.csv"), MIMIC3, _mimic3_rows(), gz)
    assert list(iter_notes(path)) == _expected()


def test_mimic3_lower_case_headers_and_same_as_pandas(tmp_path):
    path = _write_csv(tmp_path / "noteevents.csv", [h.lower() for h in MIMIC3], _mimic3_rows())
    notes = list(iter_notes(path, chunksize=2))
    assert notes == _expected()
    # Independent reference: pandas' C parser reads the same texts.
    ref = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert [n.text or "" for n in notes] == ref["text"].tolist()
    assert [n.category for n in notes] == ref["category"].tolist()


def test_crlf_records_and_utf8_bom_header(tmp_path):
    path = tmp_path / "win.csv"
    body = ('\ufeffROW_ID,CATEGORY,ISERROR,TEXT\r\n1,"ECG",,"a\r\nb"\r\n2,"Echo",1,"caf\u00e9"\r\n')
    path.write_bytes(body.encode("utf-8"))
    assert list(iter_notes(path)) == [Note("1", "ECG", "a\r\nb", False, 0),
                                      Note("2", "Echo", "caf\u00e9", True, 0)]
    ref = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert ref["TEXT"].tolist() == ["a\r\nb", "caf\u00e9"]


def test_gzip_detected_by_content_not_name(tmp_path):
    path = _write_csv(tmp_path / "NOTEEVENTS.csv", MIMIC3, _mimic3_rows(), gz=True)
    assert list(iter_notes(path)) == _expected()


def test_mimic4_layout_and_note_type_mapping(tmp_path):
    rows = [["1-DS-1", "1", "2", "DS", "1", "", "", "Name:  ___  Unit No:   ___\n \nSex:   F"],
            ["1-RR-2", "1", "2", "RR", "2", "", "", "FINAL REPORT"],
            ["1-AR-3", "1", "2", "AR", "3", "", "", "ADDENDUM: x"],
            ["1-AD-4", "1", "2", "AD", "4", "", "", "addendum"],
            ["1-XY-5", "1", "2", "XY", "5", "", "", ""]]
    path = _write_csv(tmp_path / "discharge.csv.gz", MIMIC4, rows, gz=True)
    assert list(iter_notes(path)) == [
        Note("1-DS-1", "Discharge summary", "Name:  ___  Unit No:   ___\n \nSex:   F", False, 0),
        Note("1-RR-2", "Radiology", "FINAL REPORT", False, 0),
        Note("1-AR-3", "Radiology", "ADDENDUM: x", False, 0),
        Note("1-AD-4", "Discharge summary", "addendum", False, 0),
        Note("1-XY-5", "XY", None, False, 0)]


def test_invalid_utf8_replaced_and_counted_exactly(tmp_path):
    header = ",".join(MIMIC3).encode() + b"\n"
    # valid e-acute; lone 0xFF and 0xFE (2 invalid); truncated 3-byte sequence E2 82 (1
    # invalid: one maximal subpart); a U+FFFD already in the file (not counted).
    text = b"caf\xc3\xa9 \xff\xfe ok \xe2\x82 x \xef\xbf\xbd"
    row = b'1,2,,2151-01-01,,,"Echo","Report",,,"' + text + b'"\n'
    row2 = b'2,2,,2151-01-01,,,"Echo","Report",,,"\xef\xbf\xbd only"\n'
    path = tmp_path / "n.csv"
    path.write_bytes(header + row + row2)
    notes = list(iter_notes(path))
    assert notes[0].text == "caf\u00e9 \ufffd\ufffd ok \ufffd x \ufffd"
    assert notes[0].invalid_utf8 == 3
    assert notes[1] == Note("2", "Echo", "\ufffd only", False, 0)


def test_note_over_one_megabyte(tmp_path):
    big = ('Line with "quotes", commas and [**Hospital1 18**].\n' * 30000)
    assert len(big) > 1_500_000
    path = _write_csv(tmp_path / "n.csv", MIMIC3, _mimic3_rows([("Radiology", "", big), ("ECG", "", "x")]))
    notes = list(iter_notes(path))
    assert [n.text for n in notes] == [big, "x"]


def test_blank_lines_between_records_are_skipped(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text('ROW_ID,CATEGORY,TEXT\n1,"ECG","a"\n\n2,"Echo","b"\n\n')
    assert [(n.row_id, n.category, n.text) for n in iter_notes(path)] == [("1", "ECG", "a"), ("2", "Echo", "b")]


# ------------------------------------------------------------------ bad input
def test_missing_file(tmp_path):
    with pytest.raises(NotesInputError, match=r"nope\.csv: no such file"):
        next(iter_notes(tmp_path / "nope.csv"))


def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(NotesInputError, match=r"e\.csv: empty file"):
        next(iter_notes(tmp_path / "e.csv"))


@pytest.mark.parametrize("header,missing", [
    (["ROW_ID", "CATEGORY", "DESCRIPTION"], "missing column\\(s\\) text"),
    (["row_id", "description", "text"], "missing column\\(s\\) category"),
    (["note_id", "subject_id", "text"], "MIMIC-IV notes CSV: missing column\\(s\\) note_type"),
    (["a", "b"], "missing column\\(s\\) category, text"),
])
def test_missing_columns_named_with_header(tmp_path, header, missing):
    path = _write_csv(tmp_path / "h.csv", header, [["1"] * len(header)])
    with pytest.raises(NotesInputError) as err:
        next(iter_notes(path))
    msg = str(err.value)
    assert str(path) in msg and "header found: " + ", ".join(header) in msg
    assert re.search(missing, msg)


def test_truncated_gzip_raises_midstream(tmp_path):
    rows = _mimic3_rows([("Nursing", "", f"note {i} " + "text " * 200) for i in range(2000)])
    full = _write_csv(tmp_path / "full.csv.gz", MIMIC3, rows, gz=True)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    seen = []
    with pytest.raises(NotesInputError, match=r"cut\.csv\.gz: truncated or corrupt gzip"):
        for note in iter_notes(cut):
            seen.append(note)
    assert 0 < len(seen) < 2000 and seen[0].text.startswith("note 0 ")


def test_corrupt_gzip_header(tmp_path):
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(NotesInputError, match=r"bad\.csv\.gz: truncated or corrupt gzip"):
        next(iter_notes(path))


def test_unbalanced_quote_names_line_where_field_starts(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('ROW_ID,CATEGORY,TEXT\n1,"ECG","two\nlines"\n2,"Echo","never closed\nmore\n3,ECG,x\n')
    notes = iter_notes(path)
    assert next(notes).text == "two\nlines"
    with pytest.raises(NotesInputError, match=r"q\.csv: line 4: quoted field never closed"):
        next(notes)


def test_unbalanced_quote_closed_by_a_later_quote(tmp_path):
    # The stray quote's field is closed by the next record's first quote, which is then
    # followed by a letter: reported at the start of the damaged record.
    path = tmp_path / "q.csv"
    path.write_text('ROW_ID,CATEGORY,TEXT\n1,"ECG","two\nlines"\n2,"Echo","never closed\nmore\n3,"ECG","x"\n')
    with pytest.raises(NotesInputError, match=r"q\.csv: line 4: malformed CSV in the record starting here "
                                              r"\(',' expected after '\"', at line 6"):
        list(iter_notes(path))


def test_wrong_field_count_names_line(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text('ROW_ID,CATEGORY,TEXT\n1,"ECG","a\nb"\n2,"Echo","x","extra"\n')
    with pytest.raises(NotesInputError, match=r"f\.csv: line 4: expected 3 fields as in the header, found 4"):
        list(iter_notes(path))


def test_stray_quote_after_closing_quote(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('ROW_ID,CATEGORY,TEXT\n1,"ECG","a"b\n')
    with pytest.raises(NotesInputError, match=r"s\.csv: line 2: malformed CSV in the record starting here"):
        list(iter_notes(path))


# ------------------------------------------------------- categories / corpora
def test_category_file_names_for_all_15():
    assert [category_file_name(c) for c in KNOWN_CATEGORIES] == [
        "nursing_other", "radiology", "nursing", "ecg", "physician", "discharge_summary", "echo",
        "respiratory", "nutrition", "general", "rehab_services", "social_work", "case_management",
        "pharmacy", "consult"]
    assert category_file_name("  ") == "uncategorized"


def test_corpus_selector():
    every = corpus_selector("all")
    assert all(every(c) for c in KNOWN_CATEGORIES + ("anything",))
    discharge = corpus_selector("discharge")
    assert [c for c in KNOWN_CATEGORIES if discharge(c)] == ["Discharge summary"]
    assert discharge("discharge SUMMARY ")
    chosen = corpus_selector(" physician, Case management ,ECG")
    assert [c for c in KNOWN_CATEGORIES if chosen(c)] == ["ECG", "Physician ", "Case Management "]
    with pytest.raises(ValueError, match="empty corpus selection"):
        corpus_selector(" , ")


# ------------------------------------------------------------- real quoting
@pytest.mark.parametrize("name,column", [("aci_bench_train.csv", "note"),
                                         ("mts_dialog_train.csv", "section_text")])
def test_public_notes_round_trip_like_pandas(public_notes, tmp_path, name, column):
    """Real clinical texts (quotes, commas, newlines, non-ASCII) written in the MIMIC
    layout by pandas (minimal quoting) read back exactly as pandas reads them."""
    texts = pd.read_csv(public_notes / name,
                        dtype=str, keep_default_na=False)[column].tolist()
    assert any('"' in t for t in texts) and any("," in t for t in texts)
    frame = pd.DataFrame({c: [""] * len(texts) for c in MIMIC3})
    frame["ROW_ID"] = [str(i) for i in range(len(texts))]
    frame["CATEGORY"] = "General"
    frame["TEXT"] = texts
    path = tmp_path / "NOTEEVENTS.csv.gz"
    frame.to_csv(path, index=False)
    notes = list(iter_notes(path))
    assert [n.text or "" for n in notes] == texts
    assert [n.row_id for n in notes] == frame["ROW_ID"].tolist()
    assert sum(n.invalid_utf8 for n in notes) == 0


def test_stats_cli_counts_without_text(tmp_path, capsys):
    from data_prep.notes import main
    path = _write_csv(tmp_path / "n.csv", MIMIC3, _mimic3_rows(ROWS + [("ECG", "", "Normal ECG.")]))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["2\t'ECG'\tecg", "1\t'Discharge summary'\tdischarge_summary",
                   "1\t'Physician '\tphysician", "1\t'Nursing/other'\tnursing_other",
                   "1\t'Respiratory '\trespiratory",
                   "total 6, empty text 1, ISERROR 1, notes with invalid UTF-8 0"]
    assert main([str(tmp_path / "missing.csv")]) == 1
    assert "missing.csv: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("magic,name", [(b"PK\x03\x04", "zip"), (b"BZh91AY", "bzip2"), (b"\xfd7zXZ\x00", "xz")])
def test_other_compression_named(tmp_path, magic, name):
    path = tmp_path / "NOTEEVENTS.csv.x"
    path.write_bytes(magic + b"\x00" * 20)
    with pytest.raises(NotesInputError, match=rf"NOTEEVENTS\.csv\.x: {name}-compressed"):
        next(iter_notes(path))


def test_binary_header_is_described_briefly(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(bytes(range(256)) * 50 + b"\n")
    with pytest.raises(NotesInputError) as err:
        next(iter_notes(path))
    msg = str(err.value)
    assert "junk.bin: not a MIMIC-III notes CSV" in msg and msg.isascii() and len(msg) < 1200


def test_header_problems_raise_when_called_not_when_iterated(tmp_path):
    path = _write_csv(tmp_path / "h.csv", ["ROW_ID", "TEXT"], [["1", "x"]])
    with pytest.raises(NotesInputError, match="missing column"):
        iter_notes(path)          # no next(): the check is eager
    with pytest.raises(NotesInputError, match="no such file"):
        iter_notes(tmp_path / "absent.csv.gz")


def test_na_like_texts_are_text_not_missing(tmp_path):
    # pandas' default NA parsing would turn these into NaN; here only "" means no text.
    rows = [("ECG", "", t) for t in ("NaN", "NA", "null", "N/A", "", " ")]
    path = _write_csv(tmp_path / "n.csv", MIMIC3, _mimic3_rows(rows))
    assert [n.text for n in iter_notes(path)] == ["NaN", "NA", "null", "N/A", None, " "]
