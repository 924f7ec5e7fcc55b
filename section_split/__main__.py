"""python -m section_split: notes CSV -> one-sentence-per-line text shards + manifest.

    python -m section_split --input NOTEEVENTS.csv.gz --output_dir out/ --corpus all \\
        --num_workers 2 [--shard_notes K] [--fix_known_bugs] [--spacy_model M] \\
        [--drop_iserror] [--chunksize C]

Writes `<category_file_name>-NNNNN.txt` per category (a new shard every K selected notes
of the category with --shard_notes, else one shard), each with a `.done` sidecar, and
`manifest.json` with every count (read / selected / written / dropped with reasons and
ROW_IDs, ...). Shards are byte-identical for any --num_workers: notes go to the workers
in fixed order and results are written in that order. A shard is written under a temp
name and renamed when complete, then its sidecar is written; a rerun skips shards whose
sidecar matches the settings and refuses to mix settings. No note text is ever logged.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing
import os
import platform
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from data_prep.notes import NotesInputError, category_file_name, corpus_selector, iter_notes
from section_split.sections import SectionSplitError, split_sections
from section_split.sentences import SpacyModelError, build_pipeline, note_text
from utils.atomic import temp_path_for, write_json_atomic
from utils.progress import Progress

MANIFEST = "manifest.json"
DONE_SUFFIX = ".done"
LARGE_NOTE_BYTES = 1_000_000          # "notes over 1 MB": processed whole, listed in the manifest
REASONS = ("split_error", "sentence_error", "empty_text", "iserror", "no_sentences")
_BATCH_NOTES, _BATCH_CHARS = 64, 1_000_000   # one unit of work sent to a worker
_STALE_TEMP = re.compile(r"^\.(.+-\d{5}\.txt(\.done)?|manifest\.json)\.tmp-")  # our utils.atomic temps


class SettingsMismatch(Exception):
    """The output folder holds shards made with other settings or from another input."""


# ---------------------------------------------------------------- per-note work (workers)

_NLP = None           # the spaCy pipeline of this process (set before the pool forks)


def _process_batch(texts: list[str], fix_known_bugs: bool) -> list[tuple[str, int, int, str | None, str | None]]:
    """(text, sentences, words, drop reason, detail) per note text, in order.

    Any exception drops only its note (the original caller also dropped the note on any
    exception). The detail is our own SectionSplitError message or, for anything else,
    the exception type only: other libraries' messages may quote note text.
    """
    sections: list[list[str] | tuple[str, str]] = []
    for text in texts:
        try:
            sections.append([s for s in split_sections(text, fix_known_bugs) if s])
        except SectionSplitError as exc:
            sections.append(("split_error", str(exc)))
        except Exception as exc:  # a bug or a pathological note: count it, keep going
            sections.append(("split_error", type(exc).__name__))
    flat = [s for x in sections if isinstance(x, list) for s in x]
    try:
        docs = iter(list(_NLP.pipe(flat)))
        per_note = [[next(docs) for _ in x] if isinstance(x, list) else x for x in sections]
    except Exception:  # isolate the failing note(s): redo this batch one note at a time
        per_note = []
        for x in sections:
            try:
                per_note.append([_NLP(s) for s in x] if isinstance(x, list) else x)
            except Exception as exc:
                per_note.append(("sentence_error", type(exc).__name__))
    out = []
    for x in per_note:
        if isinstance(x, tuple):
            out.append(("", 0, 0, x[0], x[1]))
        else:
            text, n_sentences, n_words = note_text(x)
            out.append((text, n_sentences, n_words, None if n_sentences else "no_sentences", None))
    return out


# ---------------------------------------------------------------- bookkeeping (main)

def _new_stats() -> dict[str, Any]:
    return {"selected": 0, "written": 0, "dropped": {r: 0 for r in REASONS}, "sentences": 0,
            "words": 0, "iserror_notes": 0, "invalid_utf8_notes": 0, "invalid_utf8_replaced": 0,
            "large_notes": 0}


def _add_stats(into: dict[str, Any], other: dict[str, Any]) -> None:
    for k, v in other.items():
        if isinstance(v, dict):
            _add_stats(into.setdefault(k, {}), v)
        else:
            into[k] = into.get(k, 0) + v


@dataclass
class _Shard:
    """One output file: its notes go through `pending` in file order."""
    name: str
    path: Path
    done: bool = False               # complete: renamed in this run or an earlier one
    record: dict[str, Any] | None = None  # the sidecar of a finished shard
    notes: int = 0                   # selected notes assigned to it in this run
    closed: bool = False             # no more notes will be assigned
    pending: int = 0                 # assigned notes whose result is not written yet
    tmp: Path | None = None
    fh: TextIO | None = None
    sha256: Any = field(default_factory=hashlib.sha256)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)   # per category
    dropped: list[dict[str, Any]] = field(default_factory=list)
    invalid_utf8: list[dict[str, Any]] = field(default_factory=list)
    large: list[dict[str, Any]] = field(default_factory=list)


class _Run:
    """Reads notes, sends batches to workers, writes results in order, keeps counts."""

    def __init__(self, args: argparse.Namespace, settings: dict[str, Any], pool: Any) -> None:
        self.args, self.settings, self.pool = args, settings, pool
        self.out = Path(args.output_dir)
        self.selected = corpus_selector(args.corpus)
        self.shards: dict[str, _Shard] = {}
        self.count_by_file: dict[str, int] = {}
        self.read: dict[str, int] = {}
        self.not_selected: dict[str, int] = {}
        self.inflight: deque = deque()
        self.batch: list[tuple] = []
        self.batch_chars = 0
        self.max_inflight = 2 * max(1, args.num_workers) + 1
        self.progress = Progress("notes", label="section_split")
        self.words = 0

    # -- shards
    def _shard_for(self, category: str) -> _Shard:
        file_name = category_file_name(category)
        index = self.count_by_file.get(file_name, 0)
        self.count_by_file[file_name] = index + 1
        number = index // self.args.shard_notes if self.args.shard_notes else 0
        name = f"{file_name}-{number:05d}.txt"
        shard = self.shards.get(name)
        if shard is None:
            shard = self.shards[name] = self._open_shard(name)
        shard.notes += 1
        if self.args.shard_notes and shard.notes == self.args.shard_notes:
            shard.closed = True
        return shard

    def _open_shard(self, name: str) -> _Shard:
        path = self.out / name
        record = _read_done(path)
        if record is not None:
            _check_settings(path, record, self.settings)
            if path.is_file() and path.stat().st_size == record["bytes"]:
                return _Shard(name, path, done=True, record=record)
        shard = _Shard(name, path)
        shard.tmp = temp_path_for(path)
        shard.fh = open(shard.tmp, "w", encoding="utf-8", newline="")
        return shard

    def _finish_shard(self, shard: _Shard) -> None:
        """Rename the complete shard into place, then record it (sidecar)."""
        if shard.done:
            if shard.notes != shard.record["notes"]:
                raise SettingsMismatch(
                    f"{shard.path}: finished earlier with {shard.record['notes']} notes but the "
                    f"input now gives {shard.notes}: the input changed; use a new --output_dir")
            return
        shard.fh.flush()
        os.fsync(shard.fh.fileno())
        shard.fh.close()
        os.replace(shard.tmp, shard.path)
        shard.record = {
            "settings": self.settings, "shard": shard.name, "notes": shard.notes,
            "bytes": shard.path.stat().st_size, "sha256": shard.sha256.hexdigest(),
            "categories": shard.stats, "dropped_notes": shard.dropped,
            "invalid_utf8_notes": shard.invalid_utf8, "large_notes": shard.large,
        }
        write_json_atomic(_done_path(shard.path), shard.record)
        shard.done = True

    def abort(self) -> None:
        """Remove temp files of unfinished shards (a killed run leaves them, harmlessly)."""
        for shard in self.shards.values():
            if shard.fh is not None and not shard.fh.closed:
                shard.fh.close()
                if shard.tmp is not None and shard.tmp.exists():
                    shard.tmp.unlink()

    # -- notes
    def feed(self, note: Any) -> None:
        self.read[note.category] = self.read.get(note.category, 0) + 1
        if not self.selected(note.category):
            self.not_selected[note.category] = self.not_selected.get(note.category, 0) + 1
            return
        shard = self._shard_for(note.category)
        if shard.done:
            return
        shard.pending += 1
        if self.args.drop_iserror and note.iserror:
            todo = "iserror"
        elif note.text is None:
            todo = "empty_text"
        else:
            todo = None
            self.batch_chars += len(note.text)
        self.batch.append((shard, note, todo))
        if len(self.batch) >= _BATCH_NOTES or self.batch_chars >= _BATCH_CHARS:
            self.submit()

    def submit(self) -> None:
        if not self.batch:
            return
        texts = [note.text for _, note, todo in self.batch if todo is None]
        if self.pool is None:
            result: Any = _process_batch(texts, self.args.fix_known_bugs)
        else:
            result = self.pool.submit(_process_batch, texts, self.args.fix_known_bugs)
        self.inflight.append((self.batch, result))
        self.batch, self.batch_chars = [], 0
        while len(self.inflight) >= self.max_inflight:
            self.collect()

    def collect(self) -> None:
        """Write the oldest batch's results, in order, and finish completed shards."""
        batch, result = self.inflight.popleft()
        results = iter(result if isinstance(result, list) else result.result())
        words = 0
        for shard, note, todo in batch:
            stats = shard.stats.setdefault(note.category, _new_stats())
            stats["selected"] += 1
            stats["iserror_notes"] += note.iserror
            if note.invalid_utf8:
                stats["invalid_utf8_notes"] += 1
                stats["invalid_utf8_replaced"] += note.invalid_utf8
                shard.invalid_utf8.append({"row_id": note.row_id, "category": note.category,
                                           "replaced": note.invalid_utf8})
            if note.text is not None and len(note.text) * 4 > LARGE_NOTE_BYTES:
                size = len(note.text.encode("utf-8"))
                if size > LARGE_NOTE_BYTES:
                    stats["large_notes"] += 1
                    shard.large.append({"row_id": note.row_id, "category": note.category, "bytes": size})
            detail = None
            if todo is None:
                text, n_sentences, n_words, todo, detail = next(results)
                if text:
                    shard.fh.write(text)
                    shard.sha256.update(text.encode("utf-8"))
                    stats["written"] += 1
                    stats["sentences"] += n_sentences
                    stats["words"] += n_words
                    words += n_words
            if todo is not None:
                stats["dropped"][todo] += 1
                entry = {"row_id": note.row_id, "category": note.category, "reason": todo}
                if detail:
                    entry["detail"] = detail
                shard.dropped.append(entry)
            shard.pending -= 1
            if shard.closed and shard.pending == 0:
                self._finish_shard(shard)
        self.words += words
        elapsed = max(time.monotonic() - self.progress.start, 1e-9)
        self.progress.label = f"section_split ({self.words / elapsed:,.0f} words/s written)"
        self.progress.update(len(batch), words=words)

    def finish(self) -> None:
        self.submit()
        while self.inflight:
            self.collect()
        for shard in self.shards.values():  # also re-checks shards finished earlier
            self._finish_shard(shard)
        self.progress.done()


# ---------------------------------------------------------------- sidecars, settings, manifest

def _done_path(shard_path: Path) -> Path:
    return shard_path.with_name(shard_path.name + DONE_SUFFIX)


def _read_done(shard_path: Path) -> dict[str, Any] | None:
    path = _done_path(shard_path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None  # unreadable sidecar: the shard is simply redone
    ok = isinstance(record, dict) and all(k in record for k in ("settings", "notes", "bytes"))
    return record if ok else None


def _check_settings(path: Path, record: dict[str, Any], settings: dict[str, Any]) -> None:
    old = record.get("settings", {})
    diff = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if diff:
        what = "; ".join(f"{k}: {old.get(k)!r} then, {settings.get(k)!r} now" for k in diff)
        raise SettingsMismatch(f"{path}: made with other settings ({what}); "
                               "use another --output_dir or delete the old outputs")


def _check_output_dir(out: Path, settings: dict[str, Any]) -> None:
    """Refuse early if any finished shard was made with other settings; drop stale temps."""
    for done in sorted(out.glob(f"*.txt{DONE_SUFFIX}")):
        record = _read_done(done.with_name(done.name[: -len(DONE_SUFFIX)]))
        if record is not None:
            _check_settings(done, record, settings)
    for stale in out.iterdir():
        if _STALE_TEMP.match(stale.name):
            stale.unlink()


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
    """CPU time of this process (reading, writing) and of its finished workers."""
    own, workers = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"main": round(own.ru_utime + own.ru_stime, 3),
            "workers": round(workers.ru_utime + workers.ru_stime, 3)}


def _manifest(run: _Run, args: argparse.Namespace, settings: dict[str, Any],
              splitter: str, elapsed: float) -> dict[str, Any]:
    categories: dict[str, dict[str, Any]] = {}
    dropped, invalid, large, shards = [], [], [], []
    for category, n in run.read.items():
        c = categories.setdefault(category, {"file_name": category_file_name(category), "read": n,
                                             "not_selected": run.not_selected.get(category, 0)})
        c.update(_new_stats())
    for shard in sorted(run.shards.values(), key=lambda s: s.name):
        record = shard.record
        for category, stats in record["categories"].items():
            _add_stats(categories[category], stats)
        dropped += record["dropped_notes"]
        invalid += record["invalid_utf8_notes"]
        large += record["large_notes"]
        written = sum(s["written"] for s in record["categories"].values())
        shards.append({"file": shard.name, "notes": record["notes"], "written": written,
                       "bytes": record["bytes"], "sha256": record.get("sha256")})
    totals = {"read": 0, "not_selected": 0}
    totals.update(_new_stats())
    for c in categories.values():
        c["dropped_total"] = sum(c["dropped"].values())
        _add_stats(totals, {k: v for k, v in c.items() if k != "file_name"})
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
    }


# ---------------------------------------------------------------- CLI

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m section_split", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="MIMIC-III NOTEEVENTS.csv(.gz) or MIMIC-IV-Note CSV")
    p.add_argument("--output_dir", required=True, help="folder for the text shards and manifest.json")
    p.add_argument("--corpus", default="all", help="all | discharge | comma list of categories")
    p.add_argument("--num_workers", type=int, default=1, help="worker processes (output is identical for any)")
    p.add_argument("--shard_notes", type=int, default=0, help="start a new shard every K selected notes of a category")
    p.add_argument("--fix_known_bugs", action="store_true", help="fix the original's two section-split bugs")
    p.add_argument("--spacy_model", default=None,
                   help="e.g. en_core_sci_md (package or path): the faithful parser pipeline; "
                        "default: model-free scispaCy rules + pysbd")
    p.add_argument("--drop_iserror", action="store_true", help="drop notes with ISERROR=1 (the original kept them)")
    p.add_argument("--chunksize", type=int, default=20000, help="rows per read chunk")
    args = p.parse_args(argv)
    if args.num_workers < 1 or args.shard_notes < 0 or args.chunksize < 1:
        p.error("--num_workers and --chunksize must be >= 1, --shard_notes >= 0")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole CLI job; returns the manifest (also written to output_dir)."""
    global _NLP
    start = time.monotonic()
    input_path = Path(args.input)
    notes = iter_notes(input_path, chunksize=args.chunksize)
    first = next(notes, None)  # bad input (missing file/columns) fails before any output
    _NLP, splitter = build_pipeline(args.spacy_model)
    print(f"section_split: sentence splitter: {splitter}", file=sys.stderr)
    settings = {"input": str(input_path.resolve()), "input_bytes": input_path.stat().st_size,
                "corpus": args.corpus, "shard_notes": args.shard_notes,
                "fix_known_bugs": args.fix_known_bugs, "drop_iserror": args.drop_iserror,
                "splitter": splitter}
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_output_dir(out, settings)
    # Workers fork from this process, which already holds the pipeline. An executor, not
    # multiprocessing.Pool: a worker killed (e.g. out of memory) fails the run loudly
    # (BrokenProcessPool) instead of hanging; finished shards stay for the rerun.
    pool = (ProcessPoolExecutor(args.num_workers, mp_context=multiprocessing.get_context("fork"))
            if args.num_workers > 1 else None)
    job = _Run(args, settings, pool)
    try:
        for note in itertools.chain([first] if first is not None else [], notes):
            job.feed(note)
        job.finish()
    except BaseException:
        job.abort()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    manifest = _manifest(job, args, settings, splitter, time.monotonic() - start)
    write_json_atomic(out / MANIFEST, manifest)
    t = manifest["totals"]
    print(f"section_split: read {t['read']:,}, written {t['written']:,}, dropped "
          f"{t['dropped_total']:,} {t['dropped']}, not selected {t['not_selected']:,}; "
          f"{t['sentences']:,} sentences, {t['words']:,} words in {manifest['elapsed_seconds']:.1f} s "
          f"-> {out / MANIFEST}", file=sys.stderr)
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (NotesInputError, SpacyModelError, SettingsMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenProcessPool:
        print(f"error: a worker process died (out of memory?) while processing {args.input}; "
              "finished shards are kept, rerun to resume", file=sys.stderr)
        return 1
    except OSError as exc:  # output folder not writable, disk full, ...: names the path
        print(f"error: {exc.filename or args.output_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
