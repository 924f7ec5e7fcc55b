"""python -m section_split: notes CSV -> one-sentence-per-line text shards + manifest.

    python -m section_split --input NOTEEVENTS.csv.gz --output_dir out/ --corpus all \\
        [--num_workers N | --dask_workers N | --scheduler ADDRESS] [--shard_notes K] \\
        [--fix_known_bugs] [--spacy_model M] [--drop_iserror] [--note_time_budget S]

Writes `<category_file_name>-NNNNN.txt` per category (a new shard every K selected notes
of the category with --shard_notes, else one shard), each with a `.done` sidecar, and
`manifest.json` with every count (read / selected / written / dropped with reasons and
ROW_IDs, input hygiene, words lost to the original's bug 2, ...). Shards are
byte-identical for any --num_workers and on Dask: notes go to the workers in fixed order
and results are written in that order. A shard is written under a temp name and renamed
when complete, then its sidecar is written; a rerun skips shards whose sidecar matches
the settings and refuses to mix settings. No note text is ever logged.
"""
from __future__ import annotations

import argparse
import itertools
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from data_prep.notes import category_file_name, iter_notes
from section_split.run import (LARGE_NOTE_BYTES, OutputFolderError, Run, SettingsMismatch, add_stats,
                               check_output_dir, new_stats, output_error)
from section_split.worker import describe_pipeline, init_worker
from utils.atomic import remove_stale_temps, write_json_atomic
from utils.cli import UserError, run_main
from utils.executor import ExecutorSettings, work_executor, worker_died

__all__ = ["main", "parse_args", "run", "LARGE_NOTE_BYTES", "SettingsMismatch", "OutputFolderError"]

MANIFEST = "manifest.json"
PROG = "section_split"
# What the text goes through besides the original's rules (part of the settings: shards
# made before it existed are not mixed with new ones).
TEXT_HYGIENE = "CRLF->LF, NUL removed"
_INFLIGHT_ON_A_CLUSTER = 64        # batches in flight with --scheduler (~1 MB of text each)


class WorkerDied(UserError):
    """A local worker process was killed (out of memory?)."""


def _git_commit() -> str | None:
    try:
        # full hash, "-dirty" when the checkout has uncommitted changes
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"],
                              cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, Any]:
    import pysbd
    import scispacy.version
    import spacy
    return {"python": platform.python_version(), "spacy": spacy.__version__,
            "scispacy": scispacy.version.VERSION, "pysbd": getattr(pysbd, "__version__", None),
            "git_commit": _git_commit()}


def _cpu_seconds() -> dict[str, float]:
    """CPU time of this process (reading, writing) and of its finished local workers."""
    own, workers = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"main": round(own.ru_utime + own.ru_stime, 3),
            "workers": round(workers.ru_utime + workers.ru_stime, 3)}


def _manifest(job: Run, args: argparse.Namespace, settings: dict[str, Any],
              splitter: str, elapsed: float) -> dict[str, Any]:
    categories: dict[str, dict[str, Any]] = {}
    dropped, invalid, large, shards = [], [], [], []
    for category, n in job.read.items():
        c = categories.setdefault(category, {"file_name": category_file_name(category), "read": n,
                                             "not_selected": job.not_selected.get(category, 0)})
        c.update(new_stats())
    for shard in sorted(job.shards.values(), key=lambda s: s.name):
        record = shard.record
        for category, stats in record["categories"].items():
            add_stats(categories[category], stats)
        dropped += record["dropped_notes"]
        invalid += record["invalid_utf8_notes"]
        large += record["large_notes"]
        written = sum(s["written"] for s in record["categories"].values())
        shards.append({"file": shard.name, "notes": record["notes"], "written": written,
                       "bytes": record["bytes"], "sha256": record.get("sha256")})
    totals = {"read": 0, "not_selected": 0}
    totals.update(new_stats())
    for c in categories.values():
        add_stats(totals, {k: v for k, v in c.items() if k != "file_name"})
    for name, c in list(categories.items()) + [("total", totals)]:
        # Invariant (issue 5): every note read is written, dropped or not selected.
        if c["read"] != c["written"] + c["dropped_total"] + c["not_selected"] or \
                c["selected"] != c["read"] - c["not_selected"]:
            raise AssertionError(f"note counts do not add up for {name!r}: {c}")
    return {
        "input": str(args.input), "output_dir": str(args.output_dir), "splitter": splitter,
        "settings": settings, "flags": vars(args), "versions": _versions(),
        "totals": totals, "categories": dict(sorted(categories.items())), "shards": shards,
        "dropped_notes": dropped, "invalid_utf8_notes": invalid, "large_notes": large,
        "elapsed_seconds": round(elapsed, 3), "cpu_seconds": _cpu_seconds(),
        "known_bug2": "words in the one-line segments the original's bug 2 drops (kept by "
                      "--fix_known_bugs): totals.known_bug2_dropped_words",
    }


def _summary(t: dict[str, Any], seconds: float) -> str:
    """The final log line: counts only, never note text."""
    reasons = ", ".join(f"{k} {v:,}" for k, v in t["dropped"].items() if v)
    line = (f"{PROG}: read {t['read']:,}, written {t['written']:,}, dropped {t['dropped_total']:,}"
            f"{f' ({reasons})' if reasons else ''}, not selected {t['not_selected']:,}; "
            f"{t['sentences']:,} sentences, {t['words']:,} words in {seconds:.1f} s")
    notes = []
    if t["invalid_utf8_notes"]:
        notes.append(f"{t['invalid_utf8_notes']:,} note(s) had invalid UTF-8 "
                     f"({t['invalid_utf8_replaced']:,} sequence(s) replaced by U+FFFD)")
    if t["crlf_notes"]:
        notes.append(f"{t['crlf_notes']:,} note(s) had CRLF line ends (made LF)")
    if t["nul_notes"]:
        notes.append(f"{t['nul_notes']:,} note(s) had NUL bytes ({t['nul_removed']:,} removed)")
    lost = t["known_bug2_dropped_words"]
    if lost:
        share = 100 * lost / max(1, lost + t["words"])
        notes.append(f"the original's bug 2 dropped {lost:,} words ({share:.1f}%; --fix_known_bugs keeps them)")
    return line + ("; " + "; ".join(notes) if notes else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--input", required=True, help="MIMIC-III NOTEEVENTS.csv(.gz) or MIMIC-IV-Note CSV")
    p.add_argument("--output_dir", required=True, help="folder for the text shards and manifest.json")
    p.add_argument("--corpus", default="all", help="all | discharge | comma list of categories")
    p.add_argument("--num_workers", type=int, default=1,
                   help="local worker processes (output is identical for any number)")
    p.add_argument("--dask_workers", type=int, default=None,
                   help="run on a local Dask cluster of this many worker processes (127.0.0.1 only)")
    p.add_argument("--scheduler", default=None,
                   help="run on an existing Dask cluster at this address (note text travels to its "
                        "workers: isolated networks only; see README)")
    p.add_argument("--shard_notes", type=int, default=0,
                   help="start a new shard every K selected notes of a category (0: one shard per category)")
    p.add_argument("--fix_known_bugs", action="store_true", help="fix the original's two section-split bugs")
    p.add_argument("--spacy_model", default=None,
                   help="e.g. en_core_sci_md (package or path): the faithful parser pipeline; "
                        "default: model-free scispaCy rules + pysbd")
    p.add_argument("--drop_iserror", action="store_true", help="drop notes with ISERROR=1 (the original kept them)")
    p.add_argument("--note_time_budget", type=float, default=300.0,
                   help="seconds one note may take; a note over it is dropped and counted (reason "
                        "'timeout'), 0 = no limit")
    p.add_argument("--chunksize", type=int, default=20000, help="rows per read chunk (kept for compatibility)")
    args = p.parse_args(argv)
    if args.num_workers < 1 or args.shard_notes < 0 or args.chunksize < 1 or args.note_time_budget < 0:
        p.error("--num_workers and --chunksize must be >= 1, --shard_notes and --note_time_budget >= 0")
    if args.dask_workers is not None and args.dask_workers < 1:
        p.error("--dask_workers must be >= 1")
    if args.scheduler and args.dask_workers:
        p.error("give --scheduler (an existing Dask cluster) or --dask_workers (a local one), not both")
    return args


def _executor_settings(args: argparse.Namespace) -> tuple[ExecutorSettings, int]:
    """Where the work runs, and how many batches may be in flight at once."""
    settings = ExecutorSettings(num_workers=args.num_workers, scheduler=args.scheduler,
                                dask_workers=args.dask_workers)
    if args.scheduler:
        return settings, _INFLIGHT_ON_A_CLUSTER
    workers = args.dask_workers or args.num_workers
    return settings, 2 * workers + 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole CLI job; returns the manifest (also written to output_dir)."""
    start = time.monotonic()
    input_path = Path(args.input)
    notes = iter_notes(input_path, chunksize=args.chunksize)
    first = next(notes, None)  # bad input (missing file/columns) fails before any output
    splitter = describe_pipeline(args.spacy_model)
    print(f"{PROG}: sentence splitter: {splitter}", file=sys.stderr)
    settings = {"input": str(input_path.resolve()), "input_bytes": input_path.stat().st_size,
                "corpus": args.corpus, "shard_notes": args.shard_notes,
                "fix_known_bugs": args.fix_known_bugs, "drop_iserror": args.drop_iserror,
                "splitter": splitter, "text_hygiene": TEXT_HYGIENE}
    out = Path(args.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        check_output_dir(out, settings)
        remove_stale_temps(out)           # what a killed run left
    except OSError as exc:
        raise output_error(exc, out) from None
    executor_settings, max_inflight = _executor_settings(args)
    print(f"{PROG}: work runs in {executor_settings.describe()}", file=sys.stderr)
    with work_executor(executor_settings, initializer=init_worker, initargs=(args.spacy_model,)) as executor:
        job = Run(args, settings, executor, max_inflight)
        try:
            for note in itertools.chain([first] if first is not None else [], notes):
                job.feed(note)
            job.finish()
        except BaseException as exc:
            job.abort()
            if isinstance(exc, BrokenProcessPool):
                raise WorkerDied(f"a worker process died (out of memory?) while processing {args.input}; "
                                 "finished shards are kept, rerun to resume") from None
            if worker_died(exc):    # Dask gave up on a task after repeated worker deaths
                raise WorkerDied(f"Dask workers kept dying on one batch ({exc}); out of memory? "
                                 "finished shards are kept, rerun to resume") from None
            raise
    manifest = _manifest(job, args, settings, splitter, time.monotonic() - start)
    try:
        write_json_atomic(out / MANIFEST, manifest)
    except OSError as exc:
        raise output_error(exc, out) from None
    print(_summary(manifest["totals"], manifest["elapsed_seconds"]) + f" -> {out / MANIFEST}", file=sys.stderr)
    return manifest


def _run_job(args: argparse.Namespace) -> int:
    run(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success, 1 with one error line for a user error, 130 on Ctrl-C."""
    return run_main(PROG, _run_job, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
