"""The main-process side of `python -m section_split`: notes in file order -> batches for
the workers -> results written in the same order into atomically renamed shards, with
every count kept (per shard sidecar, a utils.resume_record record, then the manifest).

Shards are byte-identical wherever the work runs: batches are submitted in file order
and their results consumed in submission order.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from data_prep.notes import category_file_name, corpus_selector
from section_split.worker import normalise_text, process_batch
from utils.atomic import temp_path_for
from utils.cli import UserError, os_error_message
from utils.fingerprint import FileFacts, fingerprint_files
from utils.progress import Progress
from utils.resume_record import (changed_inputs, describe_input_change, make_record,
                                 output_entry, read_record, settings_mismatch, unmet, write_record)

DONE_SUFFIX = ".done"
RECORD_KIND = "section_split.shard"
_ADVICE = "use another --output_dir, or the same settings"
_OLD_ADVICE = "use another --output_dir, or finish it with the version of this project that started it"
LARGE_NOTE_BYTES = 1_000_000          # "notes over 1 MB": processed whole, listed in the manifest
REASONS = ("split_error", "sentence_error", "empty_text", "iserror", "no_sentences", "timeout")
BATCH_NOTES, BATCH_CHARS = 64, 1_000_000   # one unit of work sent to a worker


class SettingsMismatch(UserError):
    """The output folder holds shards made with other settings or from another input."""


class OutputFolderError(UserError):
    """The output folder cannot be written (read-only, full, ...)."""


def output_error(exc: OSError, folder: Path) -> OutputFolderError:
    return OutputFolderError(os_error_message(exc, f"cannot write to {folder}"))


def new_stats() -> dict[str, Any]:
    return {"selected": 0, "written": 0, "dropped": {r: 0 for r in REASONS}, "dropped_total": 0,
            "sentences": 0, "words": 0, "iserror_notes": 0, "invalid_utf8_notes": 0,
            "invalid_utf8_replaced": 0, "large_notes": 0, "crlf_notes": 0, "nul_notes": 0,
            "nul_removed": 0, "known_bug2_dropped_words": 0}


def add_stats(into: dict[str, Any], other: dict[str, Any]) -> None:
    for k, v in other.items():
        if isinstance(v, dict):
            add_stats(into.setdefault(k, {}), v)
        else:
            into[k] = into.get(k, 0) + v


@dataclass
class _Shard:
    """One output file: its notes go through `pending` in file order."""
    name: str
    path: Path
    done: bool = False               # complete: renamed in this run or an earlier one
    record: dict[str, Any] | None = None  # a finished shard's counts, bytes and sha256 (shard_summary)
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


@dataclass
class _Item:
    """One selected note on its way through a batch."""
    shard: _Shard
    note: Any
    todo: str | None          # a drop reason known before any work, else None
    text: str | None          # the normalised text sent to the worker
    crlf: bool = False
    nul: int = 0


class Run:
    """Reads notes, sends batches to the executor, writes results in order, keeps counts."""

    def __init__(self, args: argparse.Namespace, settings: dict[str, Any], executor: cf.Executor,
                 max_inflight: int) -> None:
        self.args, self.settings, self.executor = args, settings, executor
        self.out = Path(args.output_dir)
        self.inputs = notes_inputs(settings)
        self.selected = corpus_selector(args.corpus)
        self.shards: dict[str, _Shard] = {}
        self.count_by_file: dict[str, int] = {}
        self.read: dict[str, int] = {}
        self.not_selected: dict[str, int] = {}
        self.inflight: deque = deque()
        self.batch: list[_Item] = []
        self.batch_chars = 0
        self.max_inflight = max_inflight
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
        record = read_done(path)
        if record is not None:
            check_record(done_path(path), record, self.settings, self.inputs)
            if unmet(record, kind=RECORD_KIND, settings=self.settings, inputs=self.inputs,
                     folder=self.out) is None:
                return _Shard(name, path, done=True, record=shard_summary(record))
        shard = _Shard(name, path)
        try:
            shard.tmp = temp_path_for(path)
            shard.fh = open(shard.tmp, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise output_error(exc, self.out) from None
        return shard

    def _finish_shard(self, shard: _Shard) -> None:
        """Rename the complete shard into place, then record it (sidecar)."""
        if shard.done:
            if shard.notes != shard.record["notes"]:
                raise SettingsMismatch(
                    f"{shard.path}: finished earlier with {shard.record['notes']} notes but the "
                    f"input now gives {shard.notes}: the input changed; use a new --output_dir")
            return
        try:
            shard.fh.flush()
            os.fsync(shard.fh.fileno())
            shard.fh.close()
            os.replace(shard.tmp, shard.path)
            record = make_record(
                RECORD_KIND, settings=self.settings, inputs=self.inputs,
                outputs=[output_entry(shard.path, self.out, sha256=shard.sha256.hexdigest(), facts=FileFacts())],
                counts={"notes": shard.notes, "categories": shard.stats, "dropped_notes": shard.dropped,
                        "invalid_utf8_notes": shard.invalid_utf8, "large_notes": shard.large},
                shard=shard.name)
            write_record(done_path(shard.path), record)  # last: it marks the shard finished
            shard.record = shard_summary(record)
        except OSError as exc:
            raise output_error(exc, self.out) from None
        shard.done = True

    def abort(self) -> None:
        """Remove the temp files of unfinished shards."""
        for shard in self.shards.values():
            if shard.fh is not None and not shard.done:
                try:
                    shard.fh.close()
                except OSError:
                    pass    # a full disk fails the flush too; the temp goes anyway
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
        item = _Item(shard, note, None, None)
        if self.args.drop_iserror and note.iserror:
            item.todo = "iserror"
        elif note.text is not None:
            item.text, item.crlf, item.nul = normalise_text(note.text)
        if item.todo is None and not item.text:
            item.todo = "empty_text"
        if item.todo is None:
            self.batch_chars += len(item.text)
        self.batch.append(item)
        if len(self.batch) >= BATCH_NOTES or self.batch_chars >= BATCH_CHARS:
            self.submit()

    def submit(self) -> None:
        if not self.batch:
            return
        texts = [item.text for item in self.batch if item.todo is None]
        future = self.executor.submit(process_batch, texts, self.args.fix_known_bugs,
                                      self.args.spacy_model, self.args.note_time_budget)
        self.inflight.append((self.batch, future))
        self.batch, self.batch_chars = [], 0
        while len(self.inflight) >= self.max_inflight:
            self.collect()

    def collect(self) -> None:
        """Write the oldest batch's results, in order, and finish completed shards."""
        batch, future = self.inflight.popleft()
        results = iter(future.result())
        words = 0
        for item in batch:
            words += self._write_one(item, results)
        self.words += words
        elapsed = max(time.monotonic() - self.progress.start, 1e-9)
        self.progress.label = f"section_split ({self.words / elapsed:,.0f} words/s written)"
        self.progress.update(len(batch), words=words)

    def _write_one(self, item: _Item, results: Any) -> int:
        shard, note = item.shard, item.note
        stats = shard.stats.setdefault(note.category, new_stats())
        stats["selected"] += 1
        stats["iserror_notes"] += note.iserror
        stats["crlf_notes"] += item.crlf
        stats["nul_notes"] += item.nul > 0
        stats["nul_removed"] += item.nul
        if note.invalid_utf8:
            stats["invalid_utf8_notes"] += 1
            stats["invalid_utf8_replaced"] += note.invalid_utf8
            shard.invalid_utf8.append({"row_id": note.row_id, "category": note.category,
                                       "replaced": note.invalid_utf8})
        if item.text is not None and len(item.text) * 4 > LARGE_NOTE_BYTES:
            size = len(item.text.encode("utf-8"))
            if size > LARGE_NOTE_BYTES:
                stats["large_notes"] += 1
                shard.large.append({"row_id": note.row_id, "category": note.category, "bytes": size})
        todo, detail, n_words = item.todo, None, 0
        if todo is None:
            text, n_sentences, n_words, todo, detail, bug2_words = next(results)
            stats["known_bug2_dropped_words"] += bug2_words
            if text:
                try:
                    shard.fh.write(text)
                except OSError as exc:
                    raise output_error(exc, self.out) from None
                shard.sha256.update(text.encode("utf-8"))
                stats["written"] += 1
                stats["sentences"] += n_sentences
                stats["words"] += n_words
        if todo is not None:
            stats["dropped"][todo] += 1
            stats["dropped_total"] += 1
            entry = {"row_id": note.row_id, "category": note.category, "reason": todo}
            if detail:
                entry["detail"] = detail
            shard.dropped.append(entry)
        shard.pending -= 1
        if shard.closed and shard.pending == 0:
            self._finish_shard(shard)
        return n_words

    def finish(self) -> None:
        self.submit()
        while self.inflight:
            self.collect()
        for shard in self.shards.values():  # also re-checks shards finished earlier
            self._finish_shard(shard)
        self.progress.done()


# ---------------------------------------------------------------- sidecars, settings

def done_path(shard_path: Path) -> Path:
    return shard_path.with_name(shard_path.name + DONE_SUFFIX)


def read_done(shard_path: Path) -> dict[str, Any] | None:
    """The shard's resume record; None when absent or damaged (the shard is redone). A
    sidecar of an older format is refused (utils.resume_record.OldRecordError)."""
    return read_record(done_path(shard_path), _OLD_ADVICE)


def notes_inputs(settings: dict[str, Any]) -> dict[str, Any]:
    """The run's input as resume-record inputs: the notes file's fingerprint (hashed once,
    then cached by size and mtime; the recipe fingerprints the same file)."""
    return {"notes": fingerprint_files([settings["input"]])}


def shard_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What the manifest takes from a finished shard's record: its counts, bytes, sha256."""
    [output] = record["outputs"]
    return dict(record["counts"], bytes=output["size"], sha256=output["sha256"])


def check_record(path: Path, record: dict[str, Any], settings: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Refuse a shard made with other settings or from another input: the folder would mix
    them (the manifest sums every shard)."""
    message = settings_mismatch(path, record.get("settings") or {}, settings, _ADVICE)
    if message:
        raise SettingsMismatch(message)
    changed = changed_inputs(record.get("inputs") or {}, inputs)
    if changed:
        name = changed[0]
        why = describe_input_change((record.get("inputs") or {}).get(name), inputs.get(name))
        raise SettingsMismatch(f"{path}: made from another input ({name}: {why}); "
                               "use another --output_dir, or the same input")


def check_output_dir(out: Path, settings: dict[str, Any]) -> None:
    """Refuse early, before any work, if a finished shard is of an older format or was
    made with other settings or from another input."""
    inputs = None
    for done in sorted(out.glob(f"*.txt{DONE_SUFFIX}")):
        record = read_done(done.with_name(done.name[: -len(DONE_SUFFIX)]))
        if record is not None:
            inputs = inputs if inputs is not None else notes_inputs(settings)
            check_record(done, record, settings, inputs)
