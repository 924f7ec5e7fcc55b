"""python -m section_split: shards, manifest, determinism across workers, resume, bad input."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import section_split.__main__ as cli
import section_split.run as run_module
import section_split.worker as worker
from section_split import SectionSplitError, split_sections
from section_split.sentences import build_pipeline, note_text

REPO = Path(__file__).resolve().parents[2]
HEADER = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY",
          "DESCRIPTION", "CGID", "ISERROR", "TEXT"]
DISCHARGE = ("Admission Date:  [**2151-7-16**]       Discharge Date:   [**2151-8-4**]\n\n"
             "Date of Birth:  [**2080-1-4**]             Sex:   F\n\nService: MEDICINE\n\n"
             "HISTORY OF PRESENT ILLNESS:  He is a 76 yo man with chest pain. He was admitted.\n\n"
             "Discharge Medications:\n1. Aspirin 81 mg daily.\n2. Lisinopril 10 mg daily.\n")
RAISES = "Plan:\n1. Rest\n2. Fluids\n3 days of follow up."   # faithful split raises (bug 1)
BAD_BYTE = "@@BAD@@"                                         # replaced by an invalid UTF-8 byte


def _rows(public_notes):
    """(row_id, category, iserror, text) with every case the CLI must count."""
    rows = [("101", "Discharge summary", "", DISCHARGE),
            ("102", "Discharge summary", "", RAISES),
            ("103", "Radiology", "", ""),                                    # empty TEXT
            ("104", "Nursing", "1", "Pt resting comfortably. No distress."),  # ISERROR
            ("105", "Discharge summary", "", f"Patient {BAD_BYTE}stable. Home today."),
            ("106", "Radiology", "", "   \n  "),                             # no sentences
            ("107", "Physician ", "", "Assessment:\nStable.\n\nPlan: continue. Follow up.")]
    with open(public_notes / "mts_dialog_train.csv", newline="", encoding="utf-8") as f:
        texts = [r["section_text"] for r, _ in zip(csv.DictReader(f), range(14))]
    cats = ["Physician ", "Discharge summary"]
    rows += [(str(200 + i), cats[i % 2], "0", t) for i, t in enumerate(texts)]
    return rows


@pytest.fixture(scope="module")
def notes_csv(public_notes, tmp_path_factory):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    rows = _rows(public_notes)
    for row_id, category, iserror, text in rows:
        w.writerow([row_id, "1", "2", "2151-01-01", "", "", category, "Report", "", iserror, text])
    path = tmp_path_factory.mktemp("notes") / "NOTEEVENTS.csv"
    path.write_bytes(buf.getvalue().encode("utf-8").replace(BAD_BYTE.encode(), b"\xff"))
    return path, rows


def _run(notes, out, *extra, workers=1):
    return cli.main(["--input", str(notes), "--output_dir", str(out), "--num_workers", str(workers), *extra])


def _shards(out):
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.txt"))}


def _expected_shards(rows, k, selected=lambda c: True, drop_iserror=False):
    """Independent of the CLI: group selected notes by category in file order, K per
    shard, and concatenate each note's text from the library functions."""
    nlp = build_pipeline(None)[0]
    counts, shards = {}, {}
    for _, category, iserror, text in rows:
        if not selected(category):
            continue
        base = {"Discharge summary": "discharge_summary", "Physician ": "physician"}.get(category, category.lower())
        i = counts[base] = counts.get(base, -1) + 1
        name = f"{base}-{i // k:05d}.txt"
        shards.setdefault(name, b"")
        if not text or (drop_iserror and iserror == "1"):
            continue
        try:
            sections = [s for s in split_sections(text.replace(BAD_BYTE, "\ufffd")) if s]
        except SectionSplitError:
            continue
        shards[name] += note_text(nlp.pipe(sections))[0].encode("utf-8")
    return shards


def test_outputs_and_manifest(notes_csv, tmp_path, monkeypatch, capsys):
    notes, rows = notes_csv
    monkeypatch.setattr(run_module, "LARGE_NOTE_BYTES", 300)   # so that a few notes count as "large"
    assert _run(notes, tmp_path, "--shard_notes", "3") == 0
    assert _shards(tmp_path) == _expected_shards(rows, 3)
    err = capsys.readouterr().err
    assert "model-free" in err and "Pt resting" not in err and "Lisinopril" not in err  # no note text in logs

    m = json.loads((tmp_path / "manifest.json").read_text())
    t = m["totals"]
    assert (t["read"], t["selected"], t["not_selected"]) == (21, 21, 0)
    assert t["dropped"] == {"split_error": 1, "sentence_error": 0, "empty_text": 1, "iserror": 0,
                            "no_sentences": 1, "timeout": 0}
    assert t["written"] == 18 and t["dropped_total"] == 3 and t["iserror_notes"] == 1
    assert sorted((d["row_id"], d["reason"]) for d in m["dropped_notes"]) == [
        ("102", "split_error"), ("103", "empty_text"), ("106", "no_sentences")]
    assert m["invalid_utf8_notes"] == [{"row_id": "105", "category": "Discharge summary", "replaced": 1}]
    large = sorted(r[0] for r in rows if len(r[3].replace(BAD_BYTE, "\ufffd").encode()) > 300)
    assert sorted(x["row_id"] for x in m["large_notes"]) == large and large
    written = b"".join(_shards(tmp_path).values()).decode()
    assert t["sentences"] == written.count("\n") - t["written"]          # one blank line per note
    assert t["words"] == len(written.split())
    cats = m["categories"]
    assert cats["Physician "]["file_name"] == "physician" and cats["Physician "]["read"] == 8
    assert {s["file"] for s in m["shards"]} == set(_shards(tmp_path))
    assert m["splitter"].startswith("model-free") and m["versions"]["spacy"] and m["flags"]["shard_notes"] == 3


def test_identical_for_any_workers_and_corpus_selection(notes_csv, tmp_path):
    notes, rows = notes_csv
    one, two = tmp_path / "w1", tmp_path / "w2"
    args = ("--shard_notes", "4", "--corpus", "discharge", "--drop_iserror")
    assert _run(notes, one, *args, workers=1) == 0
    assert _run(notes, two, *args, workers=2) == 0
    assert _shards(one) == _shards(two) == _expected_shards(
        rows, 4, selected=lambda c: c == "Discharge summary", drop_iserror=True)
    m1, m2 = (json.loads((d / "manifest.json").read_text()) for d in (one, two))
    for key in ("totals", "categories", "shards", "dropped_notes"):
        assert m1[key] == m2[key]
    assert m1["totals"]["not_selected"] == 21 - 10 and m1["categories"]["Nursing"]["not_selected"] == 1


def test_resume_skips_finished_shards_and_refuses_other_settings(notes_csv, tmp_path, capsys):
    notes, _ = notes_csv
    assert _run(notes, tmp_path, "--shard_notes", "3") == 0
    first = _shards(tmp_path)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.txt")}
    # a killed run: one shard never renamed (no final file, no sidecar), a stale temp left
    (tmp_path / "physician-00001.txt").unlink()
    (tmp_path / "physician-00001.txt.done").unlink()
    (tmp_path / ".physician-00001.txt.tmp-abc123").write_text("partial")
    assert _run(notes, tmp_path, "--shard_notes", "3", workers=2) == 0
    assert _shards(tmp_path) == first
    assert not list(tmp_path.glob(".*tmp-*"))
    redone = {p.name for p in tmp_path.glob("*.txt") if p.stat().st_mtime_ns != stamps.get(p.name)}
    assert redone == {"physician-00001.txt"}
    capsys.readouterr()
    assert _run(notes, tmp_path, "--shard_notes", "3", "--fix_known_bugs") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("section_split: error: ") and "fix_known_bugs" in err and "other settings" in err
    assert _shards(tmp_path) == first


def test_an_output_dir_of_an_older_version_is_refused_untouched(notes_csv, tmp_path, capsys):
    """Sidecars the previous format wrote (no version, settings + bytes at the top) are
    refused with one line before any work; no file in the folder changes."""
    notes, _ = notes_csv
    assert _run(notes, tmp_path, "--shard_notes", "3") == 0
    for done in tmp_path.glob("*.txt.done"):
        record = json.loads(done.read_text())
        output = record["outputs"][0]
        done.write_text(json.dumps(dict(record["counts"], settings=record["settings"], shard=record["shard"],
                                        bytes=output["size"], sha256=output["sha256"])))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert _run(notes, tmp_path, "--shard_notes", "3") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if "error" in line] == err[-1:]  # one line, no traceback
    assert err[-1].startswith("section_split: error: ")
    assert ".txt.done: written by an older version of this project (unversioned format; this one reads " \
           "format 2); use another --output_dir" in err[-1]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_an_input_with_other_content_is_refused_untouched(notes_csv, tmp_path, capsys):
    """Same path, same size, other bytes: the finished shards came from another input."""
    notes, _ = notes_csv
    copy = tmp_path / "NOTEEVENTS.csv"
    copy.write_bytes(notes.read_bytes())
    out = tmp_path / "out"
    assert _run(copy, out, "--shard_notes", "3") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    copy.write_bytes(copy.read_bytes().replace(b"Report", b"Rep0rt", 1))
    capsys.readouterr()
    assert _run(copy, out, "--shard_notes", "3") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"section_split: error: {out}/") and err.endswith(
        f".txt.done: made from another input (notes: {copy}: content changed (same size, other sha256)); "
        "use another --output_dir, or the same input")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_bad_input_through_the_cli(tmp_path):
    missing = tmp_path / "nope.csv"
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "section_split", "--input", str(missing), "--output_dir",
                           str(out)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"section_split: error: {missing}: no such file"]
    assert not out.exists()

    no_text = tmp_path / "no_text.csv"
    no_text.write_text("ROW_ID,CATEGORY,DESCRIPTION\n1,Radiology,Report\n")
    assert cli.main(["--input", str(no_text), "--output_dir", str(out)]) == 1
    assert not out.exists()


def test_missing_column_message(tmp_path, capsys):
    no_text = tmp_path / "no_text.csv"
    no_text.write_text("ROW_ID,CATEGORY,DESCRIPTION\n1,Radiology,Report\n")
    assert cli.main(["--input", str(no_text), "--output_dir", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(no_text) in err[0] and "TEXT" in err[0].upper()


def test_error_mid_file_leaves_no_partial_shard(notes_csv, tmp_path, capsys, monkeypatch):
    # A gzip cut in the middle: the reader fails after some notes were processed
    # (batches of 2 notes so that some shards complete before the failure).
    import gzip
    monkeypatch.setattr(run_module, "BATCH_NOTES", 2)
    notes, _ = notes_csv
    data = gzip.compress(notes.read_bytes())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    assert _run(cut, out, "--shard_notes", "2") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"section_split: error: {cut}")
    assert not (out / "manifest.json").exists()
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    # shards that were completed before the failure are whole and recorded
    assert len(list(out.glob("*.txt"))) >= 2
    for shard in out.glob("*.txt"):
        record = json.loads((out / (shard.name + ".done")).read_text())
        assert record["outputs"] == [{"path": shard.name, "size": shard.stat().st_size,
                                      "sha256": hashlib.sha256(shard.read_bytes()).hexdigest()}]


def test_missing_spacy_model_through_the_cli(notes_csv, tmp_path, capsys):
    notes, _ = notes_csv
    out = tmp_path / "out"
    assert _run(notes, out, "--spacy_model", str(tmp_path / "en_core_sci_md")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "en_core_sci_md" in err[0] and "not found" in err[0]
    assert not out.exists()


def test_sentence_error_drops_only_its_note(monkeypatch):
    # A failure inside spaCy for one note: only that note is dropped, and the detail is
    # the exception type (its message quotes text).
    nlp = build_pipeline(None)[0]

    class Flaky:
        def pipe(self, texts):
            texts = list(texts)
            if any("BOOM" in t for t in texts):
                raise ValueError("cannot handle 'BOOM here.'")
            return nlp.pipe(texts)

        def __call__(self, text):
            if "BOOM" in text:
                raise ValueError("cannot handle 'BOOM here.'")
            return nlp(text)

    monkeypatch.setattr(worker, "pipeline", lambda spacy_model: Flaky())
    out = worker.process_batch(["Fine note. Really.", "BOOM here.", "Another one."], False)
    assert [(o[3], o[4]) for o in out] == [(None, None), ("sentence_error", "ValueError"), (None, None)]
    assert out[0][:3] == note_text([nlp("Fine note. Really.")])
    assert out[2][:3] == note_text([nlp("Another one.")])
