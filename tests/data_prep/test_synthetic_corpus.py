"""data_prep.synthetic_corpus: deterministic sentence-per-line text, --mb extends --docs,
one-line errors."""
from __future__ import annotations

from data_prep.synthetic_corpus import main, make_corpus, write_corpus


def test_docs_are_deterministic_and_blank_line_separated(tmp_path):
    out = tmp_path / "c.txt"
    assert main([str(out), "--docs", "40", "--seed", "3"]) == 0
    text = out.read_text("utf-8")
    assert text == make_corpus(40, seed=3)
    assert text != make_corpus(40, seed=4)
    docs = text.rstrip("\n").split("\n\n")
    assert len(docs) == 40
    # iter_documents draws 4..33 sentences per document, one per line, none empty
    assert all(4 <= len(d.split("\n")) <= 33 and all(d.split("\n")) for d in docs)
    assert not list(tmp_path.glob(".*tmp-*"))  # atomic write


def test_megabytes_mode_extends_the_docs_mode(tmp_path):
    docs, size = write_corpus(str(tmp_path / "mb.txt"), megabytes=0.05, seed=3)
    data = (tmp_path / "mb.txt").read_bytes()
    assert size == len(data) and size >= 50_000
    assert data.decode("utf-8").startswith(make_corpus(40, seed=3).rstrip("\n") + "\n\n")
    assert len(data.decode("utf-8").rstrip("\n").split("\n\n")) == docs


def test_unwritable_output_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main([str(tmp_path / "file" / "c.txt"), "--docs", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    # atomic_open creates missing parent folders, so the file in the way is reported
    assert err == [f"data_prep.synthetic_corpus: error: cannot write {tmp_path}/file/c.txt: "
                   f"{tmp_path}/file: File exists"]
    assert (tmp_path / "file").read_text() == "x"  # nothing damaged
