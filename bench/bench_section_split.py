"""Benchmark of section_split: heuristics alone, and the whole CLI with 1 and 2 workers.

    python -m bench.bench_section_split [--notes 2000] [--seed 1] [--workers 1,2] [--skip_public]

Prints words/s (words = whitespace-separated words of the INPUT note texts) for:
  * the section heuristics alone (split_sections, faithful), one core;
  * the whole pipeline `python -m section_split` (read, sections, sentences, rules,
    write) on synthetic notes (data_prep.synthetic_notes) and on the public notes, per
    worker count: wall-clock words/s and speed-up over 1 worker, CPU seconds of the main
    process and of the workers (from the run's manifest), and the best wall time those
    CPU seconds allow on an idle machine. Wall figures need an otherwise idle machine;
    CPU seconds are robust to other load.
"""
from __future__ import annotations

import argparse
import csv
import os
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data_prep.notes import iter_notes
from section_split import SectionSplitError, split_sections

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLINICALBERT_SHARED", REPO.parent / "shared"))
PUBLIC = (("aci_bench_train.csv", "note", "Discharge summary"),
          ("mtsamples_subset_322rows.csv", "transcription", "Physician "),
          ("mts_dialog_train.csv", "section_text", "Nursing"))


def public_notes_csv(path: Path) -> Path:
    """The public notes as a MIMIC-III-shaped CSV (one category per source file)."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["ROW_ID", "CATEGORY", "ISERROR", "TEXT"])
        row_id = 0
        for name, column, category in PUBLIC:
            with open(SHARED / "data" / "public_notes" / name, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    if row.get(column):
                        row_id += 1
                        w.writerow([row_id, category, "", row[column]])
    return path


def bench_heuristics(texts: list[str], label: str) -> None:
    words = sum(len(t.split()) for t in texts)
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for text in texts:
            try:
                split_sections(text)
            except SectionSplitError:
                pass
        best = min(best, time.process_time() - start)
    print(f"heuristics  {label:<10} {len(texts):>6,} notes {words:>10,} words  "
          f"{words / best:>12,.0f} words/s (CPU, 1 core)")


def bench_cli(notes: Path, words: int, label: str, workers: list[int], tmp: Path) -> None:
    """Wall-clock and CPU of `python -m section_split` per worker count. The CPU split
    (main process: read + write; workers: sections + sentences) comes from the manifest;
    `bound` is the wall time an otherwise idle machine with `n` cores cannot beat,
    (main + workers CPU) / n, shown because wall figures on a shared machine are noise."""
    base = None
    for n in workers:
        out = tmp / f"{label}-w{n}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "section_split", "--input", str(notes), "--output_dir",
                        str(out), "--num_workers", str(n)], cwd=REPO, check=True,
                       stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        cpu = json.loads((out / "manifest.json").read_text())["cpu_seconds"]
        total = cpu["main"] + cpu["workers"]
        bound = total / min(n, os.cpu_count() or 1)
        base = base or (wall, total)
        print(f"pipeline    {label:<10} workers={n}  wall {wall:6.1f} s {words / wall:>8,.0f} words/s "
              f"(x{base[0] / wall:.2f})  CPU main {cpu['main']:5.1f} s + workers {cpu['workers']:5.1f} s "
              f"= {words / total:,.0f} words/CPU-s  idle-machine bound {words / bound:,.0f} words/s "
              f"(x{base[1] / bound:.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notes", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--skip_public", action="store_true")
    args = p.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        synthetic = tmp / "synthetic.csv.gz"
        subprocess.run([sys.executable, "-m", "data_prep.synthetic_notes", "--notes", str(args.notes),
                        "--seed", str(args.seed), "--out", str(synthetic)], cwd=REPO, check=True,
                       stderr=subprocess.DEVNULL)
        inputs = [("synthetic", synthetic)]
        if not args.skip_public and (SHARED / "data" / "public_notes").is_dir():
            inputs.append(("public", public_notes_csv(tmp / "public.csv")))
        for label, path in inputs:
            texts = [n.text for n in iter_notes(path) if n.text]
            words = sum(len(t.split()) for t in texts)
            bench_heuristics(texts, label)
            bench_cli(path, words, label, workers, tmp)


if __name__ == "__main__":
    main()
