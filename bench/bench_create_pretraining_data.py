"""Benchmark bert.create_pretraining_data: native fast path vs the pure-Python reference.

Generates the deterministic ~10 MB, 8,000-document clinical-style corpus
(data_prep/synthetic_corpus.py), then runs, each in a fresh process (so peak RSS is that
run's alone), with the clinical flags (cased, 128, 20, seed 12345, dupe 5, 0.15, 0.1):

  fast       the default path (C helper), one output file
  reference  the pure-Python reference path (Google's algorithm), same output
  shards/wN  --output_dir mode over 4 shards of the same corpus with N = 1, 2 workers

and checks that fast and reference wrote identical bytes. Prints wall time and peak RSS.

    python -m bench.bench_create_pretraining_data [--vocab V] [--skip_reference] [--workdir D]

Memory at scale (issue 12): `--mb SIZE` instead generates (or reuses) a SIZE-megabyte
corpus with the same generator and runs the default CLI on it as one shard, once with
--output_file and once in --output_dir mode (one worker, in-process), printing peak RSS
per byte of input text. The records (~18 bytes per byte of text at dupe 5) are deleted
after each run unless --keep_outputs.

    nice python -m bench.bench_create_pretraining_data --mb 1000 --workdir /tmp/bench1g
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VOCAB = REPO.parent / "shared" / "data" / "vocab" / "bert-base-cased-vocab.txt"
FLAGS = ["--do_lower_case=False", "--max_seq_length=128", "--max_predictions_per_seq=20",
         "--random_seed=12345", "--dupe_factor=5", "--masked_lm_prob=0.15", "--short_seq_prob=0.1"]


def child(args: list[str]) -> dict:
    """Run the CLI in a fresh process: wall time, CPU time (user+sys, incl. its workers),
    peak RSS of the process itself and of its largest worker (parallel mode)."""
    # Its own peak is VmHWM: ru_maxrss would start at this (parent) process's RSS, which
    # Linux carries over a fork + exec.
    code = ("import resource, sys, runpy; sys.argv = ['create_pretraining_data'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('bert.create_pretraining_data', run_name='__main__')\n"
            "finally:\n    print('MAXRSS_KB', open('/proc/self/status').read().split('VmHWM:')[1].split()[0],"
            " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"bench: run failed ({' '.join(args)}):\n{r.stderr[-3000:]}")
    self_kb, workers_kb = (int(x) for x in
                           [l for l in r.stderr.splitlines() if l.startswith("MAXRSS_KB")][-1].split()[1:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done = [l for l in r.stderr.splitlines() if "Done in" in l]
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(self_kb / 1024, 1),
            "worker_peak_rss_mb": round(workers_kb / 1024, 1),
            "summary": done[-1].split("] ")[-1] if done else ""}


def bytes_per_byte(a: argparse.Namespace, work: Path) -> None:
    """--mb mode: peak RSS / input bytes of the CLI on one generated shard."""
    from data_prep.synthetic_corpus import write_corpus

    corpus = work / f"corpus_{a.mb:g}mb.txt"
    if not corpus.is_file():
        write_corpus(str(corpus), None, a.mb, seed=0)
    size = corpus.stat().st_size
    print(f"corpus: {corpus} {size / 1e6:,.1f} MB; vocab {a.vocab}", flush=True)
    common = ["--vocab_file", a.vocab, *FLAGS]
    runs = {"output_file": ["--output_file", str(work / "one.tfrecord")],
            "output_dir": ["--output_dir", str(work / "dir"), "--num_workers=1"]}
    for name, args in runs.items():
        r = child(["--input_file", str(corpus), *args, *common])
        peak = max(r["peak_rss_mb"], r["worker_peak_rss_mb"]) * 1024 * 1024
        r["bytes_rss_per_byte"] = round(peak / size, 2)
        out = work / "one.tfrecord" if name == "output_file" else work / "dir" / f"{corpus.stem}.tfrecord"
        r["output_gb"] = round(out.stat().st_size / 1e9, 2)
        print(name, json.dumps(r), flush=True)
        if not a.keep_outputs:
            for p in [out, Path(str(out) + ".json")]:
                if p.exists():
                    p.unlink()
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", default=str(DEFAULT_VOCAB))
    ap.add_argument("--docs", type=int, default=8000)
    ap.add_argument("--skip_reference", action="store_true")
    ap.add_argument("--workdir", default=None, help="keep files here (default: a temp dir)")
    ap.add_argument("--mb", type=float, default=None, help="memory at scale: one shard of this many MB")
    ap.add_argument("--keep_outputs", action="store_true", help="--mb mode: keep the records")
    a = ap.parse_args()
    from data_prep.synthetic_corpus import make_corpus

    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_cpd_"))
    work.mkdir(parents=True, exist_ok=True)
    if a.mb is not None:
        bytes_per_byte(a, work)
        return
    corpus = work / "corpus.txt"
    text = make_corpus(a.docs, seed=0)
    corpus.write_text(text, "utf-8")
    docs = text.split("\n\n")
    shard_dir = work / "shards"
    shard_dir.mkdir(exist_ok=True)
    for i in range(4):
        (shard_dir / f"part{i}.txt").write_text("\n\n".join(docs[i::4]) + "\n", "utf-8")
    print(f"corpus: {corpus.stat().st_size / 1e6:.1f} MB, {len(docs):,} documents, "
          f"{text.count(chr(10)):,} lines; vocab {a.vocab}")

    results = {}
    common = ["--vocab_file", a.vocab, *FLAGS]
    results["fast"] = child(["--input_file", str(corpus), "--output_file", str(work / "fast.tfrecord"), *common])
    print("fast     ", json.dumps(results["fast"]), flush=True)
    for n in (1, 2):
        out = work / f"shards_w{n}"
        for p in out.glob("*"):
            p.unlink()
        results[f"shards_w{n}"] = child(["--input_file", f"{shard_dir}/*.txt", "--output_dir", str(out),
                                         f"--num_workers={n}", *common])
        print(f"shards w{n}", json.dumps(results[f"shards_w{n}"]), flush=True)
    same = all((work / "shards_w1" / f"part{i}.tfrecord").read_bytes()
               == (work / "shards_w2" / f"part{i}.tfrecord").read_bytes() for i in range(4))
    print(f"shard outputs identical for 1 and 2 workers: {same}; 1 -> 2 workers: "
          f"{results['shards_w1']['wall_s'] / results['shards_w2']['wall_s']:.2f}x wall")
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(other processes inflate wall times; CPU times are less affected)")
    if not a.skip_reference:
        results["reference"] = child(["--input_file", str(corpus), "--output_file",
                                      str(work / "reference.tfrecord"), "--reference", *common])
        print("reference", json.dumps(results["reference"]), flush=True)
        same = (work / "fast.tfrecord").read_bytes() == (work / "reference.tfrecord").read_bytes()
        print(f"fast == reference records (bytes): {same}")
        f, r = results["fast"], results["reference"]
        print(f"speed-up {r['wall_s'] / f['wall_s']:.1f}x wall, {r['cpu_s'] / f['cpu_s']:.1f}x CPU; peak RSS {f['peak_rss_mb']:.0f} MB vs "
              f"{r['peak_rss_mb']:.0f} MB ({f['peak_rss_mb'] / r['peak_rss_mb']:.2f}x)")
    print(f"output {os.path.getsize(work / 'fast.tfrecord') / 1e6:.1f} MB; files in {work}")


if __name__ == "__main__":
    main()
