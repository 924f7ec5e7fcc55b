"""Task file readers and the four i2b2 converters, end to end on generated raw files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from downstream_tasks import data, i2b2

REPO = Path(__file__).resolve().parents[2]


def _raw_files(synthetic_dir: Path, year: int, split: str) -> list[str]:
    return sorted(str(p) for p in (synthetic_dir / "raw" / f"i2b2_{year}" / split).rglob("*.*"))


@pytest.mark.parametrize("year", i2b2.YEARS)
def test_converter_end_to_end(synthetic_dir: Path, tmp_path: Path, year: int) -> None:
    out = tmp_path / str(year)
    summary = i2b2.convert(year, _raw_files(synthetic_dir, year, "train"),
                           _raw_files(synthetic_dir, year, "test"), out, dev_fraction=0.34, seed=7)
    expected_train = data.read_conll(synthetic_dir / "expected" / f"i2b2_{year}_train.tsv")
    expected_test = data.read_conll(synthetic_dir / "expected" / f"i2b2_{year}_test.tsv")
    assert data.read_conll(out / "test.tsv") == expected_test  # exact words and labels, in order
    train, dev = data.read_conll(out / "train.tsv"), data.read_conll(out / "dev.tsv")
    assert sorted(train + dev, key=repr) == sorted(expected_train, key=repr)  # nothing lost or added
    assert summary["train_input"]["text_mismatches"] == 0 and summary["train_input"]["overlapping_dropped"] == 0
    labels = {lab for s in expected_test for lab in s.labels}
    assert len(labels) > 3 and "O" in labels
    if year == 2006:  # FAITHFUL: the original's split, first 70% of the sentences
        assert train == expected_train[:int(0.7 * len(expected_train))]
    else:  # seeded split by patient: same seed, same split; dev patients listed
        assert summary["dev_documents"]
        again = i2b2.convert(year, _raw_files(synthetic_dir, year, "train"),
                             _raw_files(synthetic_dir, year, "test"), tmp_path / "again", 0.34, seed=7)
        assert again["dev_documents"] == summary["dev_documents"]
        assert (tmp_path / "again" / "dev.tsv").read_bytes() == (out / "dev.tsv").read_bytes()
    if year == 2012:  # TIMEX3 and TLINK ignored, typeless EVENTs skipped and counted
        assert summary["train_input"]["empty_type_skipped"] == 6


def test_entity_glued_to_punctuation_is_cut() -> None:
    stats = i2b2.Stats()
    text = "Seen 01/02/2003, then home.\nsecond line"
    sentences = i2b2.document_sentences(text, [(5, 15, "DATE", "P0"), (8, 12, "X", "P1")], "doc", stats)
    assert sentences[0].words == ("Seen", "01/02/2003", ",", "then", "home.")
    assert sentences[0].labels == ("O", "B-DATE", "O", "O", "O")
    assert stats.overlapping_dropped == 1 and stats.examples == ["overlapping annotation dropped: doc P1"]
    # a span crossing a line break continues with I- on the next line (as the original)
    s = i2b2.document_sentences("a b\nc d", [(2, 5, "T", "E0")], "doc", i2b2.Stats())
    assert [x.labels for x in s] == [("O", "B-T"), ("I-T", "O")]


def test_2010_bad_concept_line(synthetic_dir: Path, tmp_path: Path) -> None:
    files = _raw_files(synthetic_dir, 2010, "train")
    con = next(f for f in files if f.endswith(".con"))
    bad = tmp_path / Path(con).name
    bad.write_text(Path(con).read_text() + 'c="x" 1:0||t="problem"\n')
    lines = len(Path(con).read_text().splitlines()) + 1
    with pytest.raises(i2b2.ConversionError, match=rf"{bad}: line {lines}: not a concept line"):
        i2b2.convert(2010, [f for f in files if f != con] + [str(bad)], files, tmp_path / "out")
    with pytest.raises(i2b2.ConversionError, match="without both .txt and .con"):
        i2b2.convert(2010, [f for f in files if f != con], files, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_one_line_errors(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "downstream_tasks.i2b2", "--year", "2012", "--train",
                        str(tmp_path / "none*.xml"), "--test", "x", "--output_dir", str(tmp_path / "o")],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == \
        f"downstream_tasks.i2b2: error: {tmp_path / 'none*.xml'}: input glob matches no file"
    r = subprocess.run([sys.executable, "-m", "downstream_tasks.i2b2", "--help"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "--dev_fraction" in r.stdout and "--seed" in r.stdout


def test_mednli_reader_errors(synthetic_dir: Path, tmp_path: Path) -> None:
    examples = data.read_mednli(synthetic_dir / "mednli" / "mli_train_v1.jsonl")
    assert len(examples) == 96 and {e.label for e in examples} == set(data.MEDNLI_LABELS)
    bad = tmp_path / "mli.jsonl"
    good = json.dumps({"pairID": "1", "sentence1": "a", "sentence2": "b", "gold_label": "neutral"})
    bad.write_text(good + "\n" + good.replace("neutral", "maybe") + "\n")
    with pytest.raises(data.DataError, match=rf"{bad}: line 2: field 'gold_label' is 'maybe'; expected one of"):
        data.read_mednli(bad)
    bad.write_text(good + "\n{not json\n")
    with pytest.raises(data.DataError, match=rf"{bad}: line 2: invalid JSON"):
        data.read_mednli(bad)
    bad.write_text(json.dumps({"sentence1": "a", "gold_label": "neutral"}) + "\n")
    with pytest.raises(data.DataError, match=rf"{bad}: line 1: field 'sentence2' missing"):
        data.read_mednli(bad)


def test_conll_reader(tmp_path: Path) -> None:
    f = tmp_path / "t.tsv"
    f.write_text("Aspirin\tB-DRUG\ngiven\tO\n\n\nFever\tB-X\n")
    assert data.read_conll(f) == [data.NerSentence(("Aspirin", "given"), ("B-DRUG", "O")),
                                  data.NerSentence(("Fever",), ("B-X",))]
    f.write_text("Aspirin\tB-DRUG\ngiven O\n")
    with pytest.raises(data.DataError, match=rf"{f}: line 2: expected two tab-separated fields"):
        data.read_conll(f)
    f.write_text("Aspirin\tDRUG\n")
    with pytest.raises(data.DataError, match=rf"{f}: line 1: field 2 \(label\) 'DRUG' is not O, B-TYPE or I-TYPE"):
        data.read_conll(f)
    f.write_bytes(b"caf\xe9\tO\n")
    with pytest.raises(data.DataError, match=rf"{f}: not UTF-8 text"):
        data.read_conll(f)
    with pytest.raises(data.DataError, match="missing dev.tsv, test.tsv"):
        (tmp_path / "train.tsv").write_text("a\tO\n")
        data.task_files("ner", tmp_path)


def test_cli_converts_with_globs(synthetic_dir: Path, tmp_path: Path) -> None:
    raw = synthetic_dir / "raw" / "i2b2_2010"
    r = subprocess.run([sys.executable, "-m", "downstream_tasks.i2b2", "--year", "2010",
                        "--train", f"{raw}/train/txt/*.txt,{raw}/train/concept/*.con",
                        "--test", f"{raw}/test/txt/*.txt,{raw}/test/concept/*.con",
                        "--output_dir", str(tmp_path / "i2b2_2010"), "--dev_fraction", "0.34"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert data.read_conll(tmp_path / "i2b2_2010" / "test.tsv") == \
        data.read_conll(synthetic_dir / "expected" / "i2b2_2010_test.tsv")
    assert "i2b2 2010 test: 6 documents" in r.stderr
