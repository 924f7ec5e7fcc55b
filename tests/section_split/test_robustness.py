"""section_split and data_prep CLIs on bad input, bad disks, odd text and slow notes."""
from __future__ import annotations

import csv
import errno
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import section_split.__main__ as cli
import section_split.run as run_module
import section_split.worker as worker
from section_split import split_sections

REPO = Path(__file__).resolve().parents[2]
HEADER = ["ROW_ID", "CATEGORY", "ISERROR", "TEXT"]
PLAN = "Plan:\n1. Rest and fluids.\n2. Follow up in clinic.\n\nHe is stable. Going home today."


def _csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for row_id, category, text in rows:
        w.writerow([row_id, category, "", text])
    path.write_bytes(buf.getvalue().encode("utf-8").replace(b"@BAD@", b"\xff"))
    return path


def _main(notes: Path, out: Path, *extra: str) -> int:
    return cli.main(["--input", str(notes), "--output_dir", str(out), *extra])


def _text(out: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in sorted(out.glob("*.txt")))


def test_header_only_csv_gives_an_empty_manifest(tmp_path, capsys):
    notes = _csv(tmp_path / "n.csv", [])
    assert _main(notes, tmp_path / "out") == 0
    t = json.loads((tmp_path / "out" / "manifest.json").read_text())["totals"]
    assert (t["read"], t["written"], t["dropped_total"]) == (0, 0, 0)
    assert "read 0, written 0" in capsys.readouterr().err


def test_crlf_nul_and_invalid_utf8_are_normalised_and_counted(tmp_path, capsys):
    lf = "Assessment:\nStable.\n\nPlan: continue. Follow up."
    rows = [("1", "Nursing", lf.replace("\n", "\r\n")), ("2", "Nursing", lf),
            ("3", "Nursing", "Pain\x00 resolved.\x00\x00 Home."), ("4", "Nursing", "Bad @BAD@ byte. Fine.")]
    assert _main(_csv(tmp_path / "n.csv", rows), tmp_path / "out") == 0
    out = _text(tmp_path / "out")
    # the CRLF note is written exactly as its LF twin; no NUL and no "\r" is left
    first, second = out.split("\n\n")[:2]
    assert first == second and "\r" not in out and "\x00" not in out and "Pain resolved." in out
    t = json.loads((tmp_path / "out" / "manifest.json").read_text())["totals"]
    assert (t["crlf_notes"], t["nul_notes"], t["nul_removed"]) == (1, 1, 3)
    assert (t["invalid_utf8_notes"], t["invalid_utf8_replaced"]) == (1, 1)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1 note(s) had invalid UTF-8" in last and "CRLF" in last and "3 removed" in last


def test_words_dropped_by_known_bug_2_are_counted(tmp_path, capsys):
    # "Plan:" then the one-line item "1. Rest and fluids.": the faithful rules drop it.
    dropped: list[str] = []
    split_sections(PLAN, dropped=dropped)
    assert dropped == ["1. Rest and fluids."]
    assert _main(_csv(tmp_path / "n.csv", [("1", "Physician ", PLAN)]), tmp_path / "a") == 0
    t = json.loads((tmp_path / "a" / "manifest.json").read_text())["totals"]
    assert t["known_bug2_dropped_words"] == 4 and "Rest" not in _text(tmp_path / "a")
    assert "bug 2 dropped 4 words" in capsys.readouterr().err
    assert _main(_csv(tmp_path / "n.csv", [("1", "Physician ", PLAN)]), tmp_path / "b", "--fix_known_bugs") == 0
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["totals"]["known_bug2_dropped_words"] == 0
    assert "Rest and fluids." in _text(tmp_path / "b")


def test_slow_note_is_dropped_with_its_row_id_and_the_run_goes_on(tmp_path, monkeypatch):
    real = worker.process_note

    def slow_on_marker(nlp, text, fix_known_bugs):
        while "SLOWNOTE" in text:      # a note that never finishes
            time.sleep(0.01)
        return real(nlp, text, fix_known_bugs)

    monkeypatch.setattr(worker, "process_note", slow_on_marker)
    rows = [("1", "Nursing", "First note. Fine."), ("2", "Nursing", "SLOWNOTE here."),
            ("3", "Nursing", "Third note. Fine.")]
    start = time.monotonic()
    assert _main(_csv(tmp_path / "n.csv", rows), tmp_path / "out", "--note_time_budget", "0.5") == 0
    assert time.monotonic() - start < 30
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["totals"]["dropped"]["timeout"] == 1 and m["totals"]["written"] == 2
    [entry] = m["dropped_notes"]
    assert (entry["row_id"], entry["reason"]) == ("2", "timeout") and "--note_time_budget" in entry["detail"]
    assert _text(tmp_path / "out") == "First note.\nFine.\n\nThird note.\nFine.\n\n"


def test_time_budget_interrupts_a_thread_that_is_not_the_main_one():
    # Dask runs tasks in worker threads, where SIGALRM cannot be used.
    outcome = []

    def busy() -> None:
        try:
            with worker.time_budget(0.2):
                while True:
                    sum(range(1000))
        except worker.NoteTimeout:
            outcome.append("timeout")

    thread = threading.Thread(target=busy)
    thread.start()
    thread.join(10)
    assert outcome == ["timeout"] and not thread.is_alive()
    with worker.time_budget(5):      # a block that ends in time is not interrupted later
        pass
    time.sleep(0.1)


def test_output_folder_that_cannot_be_made(tmp_path, capsys):
    notes = _csv(tmp_path / "n.csv", [("1", "Nursing", "Fine. Note.")])
    (tmp_path / "file").write_text("x")
    assert _main(notes, tmp_path / "file" / "out") == 1
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("section_split: error: cannot write to ") and str(tmp_path / "file") in line
    assert "Traceback" not in capsys.readouterr().err


class _FullDisk(io.TextIOWrapper):
    """A shard file on a disk that fills up after a few bytes."""
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", self.name)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_full_or_read_only_output_folder(tmp_path, monkeypatch, capsys, fault):
    notes = _csv(tmp_path / "n.csv", [(str(i), "Nursing", "Fine. Note.") for i in range(5)])
    out = tmp_path / "out"
    if fault == "full":
        def fake_open(path, mode="r", **kwargs):
            return _FullDisk(open(path, mode + "b" if "b" not in mode else mode), **kwargs)
        monkeypatch.setattr(run_module, "open", fake_open, raising=False)
    else:
        def read_only(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        monkeypatch.setattr(run_module, "temp_path_for", read_only)
    assert _main(notes, out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    reason = "No space left on device" if fault == "full" else "Read-only file system"
    assert err[-1].startswith(f"section_split: error: cannot write to {out}: ") and err[-1].endswith(reason)
    assert not any("Traceback" in line for line in err)
    assert [p.name for p in out.iterdir()] == []        # partial temps removed, nothing else


@pytest.mark.parametrize("module", ["section_split", "data_prep.notes", "data_prep.synthetic_notes"])
def test_help_exits_0_with_defaults(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""
    assert "usage:" in proc.stdout and ("(default:" in proc.stdout or module == "data_prep.notes")
    if module == "section_split":
        for flag in ("--scheduler", "--dask_workers", "--note_time_budget", "--num_workers"):
            assert flag in proc.stdout
        assert "(default: 300.0)" in " ".join(proc.stdout.split())   # argparse wraps lines


def test_notes_cli_error_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "data_prep.notes", str(tmp_path / "none.csv")], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"data_prep.notes: error: {tmp_path / 'none.csv'}: no such file"]
