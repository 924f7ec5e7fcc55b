"""A MIMIC-III-sized rehearsal of the text half of the recipe: notes -> sections -> TFRecords.

    python -m bench.rehearsal --notes 104000 --workdir /tmp/rehearsal [--num_workers 1]

Generates a synthetic NOTEEVENTS (data_prep.synthetic_notes --lengths mimic3: MIMIC-III's
category mix and per-category note lengths, 50-100 KB discharge summaries included;
104,000 notes is 1/20 of MIMIC-III's 2.08 M), then runs, each as the recipe runs it:

  sections   python -m section_split --corpus all (one text shard per category)
  tfrecords  python -m bert.create_pretraining_data --output_dir (one output per shard) with
             the recipe's settings: cased, seq 128, 20 predictions, dupe 5, seed 12345,
             masked_lm_prob 0.15, short_seq_prob 0.1, BERT-Base cased vocabulary

and records per stage: wall time, CPU time (user+sys of the stage and its workers),
peak RSS (the largest single process), the disk its outputs take. It then scales each
stage to full MIMIC-III (880 M words of notes) by the words of the generated notes, and
to 2, 16 and 64 cores by CPU time (the text step's batches spread evenly over the
cores; the TFRecord step runs one process per shard, so it can never take less than
its largest shard's CPU, 15 category shards unless --shard_notes splits them). Prints a
table and writes `rehearsal.json` in --workdir.
Steps already done in --workdir (their JSON record exists) are not rerun.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLINICALBERT_SHARED", REPO.parent / "shared"))
MIMIC3_WORDS, MIMIC3_NOTES = 880e6, 2.08e6
CORES = (2, 16, 64)
RECIPE_FLAGS = ["--do_lower_case=False", "--max_seq_length=128", "--max_predictions_per_seq=20",
                "--random_seed=12345", "--dupe_factor=5", "--masked_lm_prob=0.15",
                "--short_seq_prob=0.1"]


def _disk(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total


def run_stage(name: str, argv: list[str], outputs: list[Path], workdir: Path) -> dict[str, Any]:
    """Run one stage as a child process; its figures, also saved as workdir/NAME.json."""
    record_path = workdir / f"{name}.json"
    if record_path.is_file():
        print(f"rehearsal: {name}: done earlier ({record_path})", file=sys.stderr)
        return json.loads(record_path.read_text())
    print(f"rehearsal: {name}: {' '.join(argv)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *argv], cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"rehearsal: {name} failed (exit {os.waitstatus_to_exitcode(status)})")
    # ru_maxrss of a waited child covers its own waited-for children (KiB on Linux):
    # the peak RSS of the largest single process of the stage.
    record = {"stage": name, "command": " ".join(argv), "wall_s": round(wall, 1),
              "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
              "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "disk_mb": round(_disk(outputs) / 1e6, 1)}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def input_words(notes: Path, workdir: Path) -> tuple[int, int]:
    """(notes, whitespace-separated words of their texts): MIMIC-III's 880 M words are
    words of the notes, so the rehearsal scales by these (cached in workdir)."""
    cache = workdir / "input_words.json"
    if cache.is_file():
        return tuple(json.loads(cache.read_text()))
    from data_prep.notes import iter_notes
    n = words = 0
    for note in iter_notes(notes):
        n += 1
        words += len(note.text.split()) if note.text else 0
    cache.write_text(json.dumps([n, words]))
    return n, words


def extrapolate(stage: dict[str, Any], scale: float, largest_share: float | None) -> dict[str, Any]:
    """Full-MIMIC-III figures from a rehearsal stage: CPU and disk scale with the words;
    wall time on c cores = CPU / c, but for the TFRecord step (one process per shard) at
    least the CPU of its largest shard (`largest_share` of the text), whatever c. Peak RSS
    of the TFRecord step scales with its largest shard; that of the text step does not
    (it holds a few batches of notes)."""
    cpu = stage["cpu_s"] * scale
    out = {"cpu_h": round(cpu / 3600, 2), "disk_gb": round(stage["disk_mb"] * scale / 1e3, 1)}
    for c in CORES:
        wall = cpu / c if largest_share is None else max(cpu / c, cpu * largest_share)
        out[f"wall_h_{c}_cores"] = round(wall / 3600, 2)
    rss = stage["peak_rss_mb"] * (scale if largest_share is not None else 1)
    out["peak_rss_gb"] = round(rss / 1e3, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notes", type=int, default=104_000, help="notes to generate (104,000 = 1/20 MIMIC-III)")
    p.add_argument("--seed", type=int, default=20)
    p.add_argument("--workdir", required=True, help="folder for the notes, outputs and figures (kept)")
    p.add_argument("--num_workers", type=int, default=1, help="workers of both stages")
    p.add_argument("--vocab_file", default=str(SHARED / "data" / "vocab" / "bert-base-cased-vocab.txt"))
    args = p.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    notes, text, records = work / "NOTEEVENTS.csv.gz", work / "text", work / "tfrecords"
    stages = [run_stage("notes", ["-m", "data_prep.synthetic_notes", "--notes", str(args.notes),
                                  "--seed", str(args.seed), "--out", str(notes), "--lengths", "mimic3"],
                        [notes], work)]
    stages.append(run_stage("sections", ["-m", "section_split", "--input", str(notes), "--output_dir",
                                         str(text), "--corpus", "all", "--num_workers", str(args.num_workers)],
                            [text], work))
    shards = sorted(str(s) for s in text.glob("*.txt") if s.stat().st_size > 0)
    stages.append(run_stage("tfrecords", ["-m", "bert.create_pretraining_data", "--input_file", ",".join(shards),
                                          "--output_dir", str(records), "--vocab_file", args.vocab_file,
                                          *RECIPE_FLAGS, f"--num_workers={args.num_workers}"],
                            [records], work))
    n_notes, words = input_words(notes, work)
    written = json.loads((text / "manifest.json").read_text())["totals"]["words"]
    sizes = [Path(s).stat().st_size for s in shards]
    largest_share = max(sizes) / sum(sizes)
    scale = MIMIC3_WORDS / words
    report = {"notes": n_notes, "input_words": words, "words_written": written,
              "scale_to_mimic3": round(scale, 2), "largest_shard_share": round(largest_share, 3),
              "num_workers": args.num_workers, "cpu_count": os.cpu_count(),
              "load_average_at_end": os.getloadavg(), "stages": stages,
              "mimic3": {s["stage"]: extrapolate(s, scale, largest_share if s["stage"] == "tfrecords" else None)
                         for s in stages}}
    (work / "rehearsal.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nrehearsal: {n_notes:,} notes, {words:,} words ({written:,} written by section_split), "
          f"1/{scale:.1f} of MIMIC-III, {args.num_workers} worker(s)")
    print(f"{'stage':<10} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'disk MB':>9} | MIMIC-III: "
          f"{'CPU h':>7} " + " ".join(f"{f'{c} cores h':>11}" for c in CORES) + f" {'RSS GB':>7} {'disk GB':>8}")
    for s in stages:
        m = report["mimic3"][s["stage"]]
        print(f"{s['stage']:<10} {s['wall_s']:>8.1f} {s['cpu_s']:>8.1f} {s['peak_rss_mb']:>12.1f} "
              f"{s['disk_mb']:>9.1f} | {'':>10} {m['cpu_h']:>7.2f} "
              + " ".join(f"{m[f'wall_h_{c}_cores']:>11.2f}" for c in CORES)
              + f" {m['peak_rss_gb']:>7.1f} {m['disk_gb']:>8.1f}")


if __name__ == "__main__":
    main()
