"""Benchmark data_prep: synthetic note generation, iter_notes throughput, UTF-8 cost.

    python -m bench.bench_notes [--notes 100000] [--workdir /tmp/bench_notes]

Prints: generation rate; reading rate (notes/s, MB/s of CSV) for plain and gzip CSV;
the same read with pandas.read_csv(chunksize=20000) for reference; the cost of the
invalid-UTF-8 handling on ASCII text and on text where 1 % of lines carry non-ASCII
bytes (both valid and invalid); bert.build_vocab time on the text of 20,000 notes.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from bert.build_vocab import build_vocab
from data_prep.notes import iter_notes
from data_prep.synthetic_notes import write_synthetic_notes


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _read_all(path: Path) -> int:
    return sum(len(n.text or "") for n in iter_notes(path))


def _read_pandas(path: Path) -> int:
    total = 0
    for chunk in pd.read_csv(path, dtype=str, keep_default_na=False, encoding="latin-1",
                             chunksize=20000, usecols=["ROW_ID", "CATEGORY", "ISERROR", "TEXT"]):
        total += sum(len(t) for t in chunk["TEXT"].tolist())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--workdir", default="/tmp/bench_notes")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    plain, gz = work / "notes.csv", work / "notes.csv.gz"

    secs, _ = _timed(lambda: write_synthetic_notes(plain, args.notes, seed=1))
    mb = plain.stat().st_size / 1e6
    print(f"generate {args.notes:,} notes (plain CSV, {mb:.1f} MB): {secs:.2f} s, {args.notes / secs:,.0f} notes/s")
    secs, _ = _timed(lambda: write_synthetic_notes(gz, args.notes, seed=1))
    print(f"generate {args.notes:,} notes (gzip, {gz.stat().st_size / 1e6:.1f} MB): {secs:.2f} s")

    for label, path in (("plain", plain), ("gzip", gz)):
        secs, _ = _timed(lambda: _read_all(path))
        print(f"iter_notes {label}: {secs:.2f} s, {args.notes / secs:,.0f} notes/s, {mb / secs:.0f} MB/s of CSV")
    secs, _ = _timed(lambda: _read_pandas(plain))
    print(f"pandas.read_csv(chunksize=20000) plain, for reference: {secs:.2f} s, {mb / secs:.0f} MB/s")

    # UTF-8 handling cost on ASCII text: the per-field str.isascii() test is all it adds.
    texts = [n.text or "" for n in iter_notes(plain)]
    secs, _ = _timed(lambda: sum(t.isascii() for t in texts))
    print(f"UTF-8 check (isascii) on all {mb:.1f} MB of ASCII texts: {secs * 1000:.1f} ms")
    # ...and on a copy where every 100th line has non-ASCII bytes (valid and invalid).
    mixed = work / "mixed.csv"
    with open(plain, "rb") as src, open(mixed, "wb") as dst:
        for i, line in enumerate(src):
            dst.write(line.replace(b" the ", b" caf\xc3\xa9 \xff ", 1) if i % 100 == 0 else line)
    secs, _ = _timed(lambda: sum(n.invalid_utf8 for n in iter_notes(mixed)))
    bad = sum(n.invalid_utf8 for n in iter_notes(mixed))
    print(f"UTF-8 check with 1 % non-ASCII lines: {secs:.2f} s ({bad:,} invalid sequences counted)")

    # build_vocab on the text of the first 20,000 notes (one line per note line).
    text = work / "corpus.txt"
    with open(text, "w", encoding="utf-8") as f:
        for i, note in enumerate(iter_notes(plain)):
            if i == 20_000:
                break
            f.write(note.text + "\n\n")
    secs, tokens = _timed(lambda: build_vocab([str(text)], vocab_size=8000))
    print(f"build_vocab --vocab_size=8000 on {text.stat().st_size / 1e6:.1f} MB of text: {secs:.2f} s "
          f"({len(tokens):,} tokens)")
    for p in (plain, gz, mixed, text):
        os.unlink(p)


if __name__ == "__main__":
    main()
