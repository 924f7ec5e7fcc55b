"""One resume record for every stage and step: what proves a piece of work finished.

A record is one JSON file written beside (or about) the work it describes:

    {"kind": "section_split.shard",     which stage or step wrote it
     "version": 2,                      RECORD_VERSION, one format for the whole project
     "settings": {...},                 what decides the output (compared for equality)
     "inputs": {name: [fingerprint]},   utils.fingerprint fingerprints of the files read
     "outputs": [{"path", "size", "sha256"}],
     "counts": {...},                   the stage's counters (not part of the rule)
     ...}                               anything else the writer keeps (status, timings)

It is written atomically and LAST (`write_record`), after every output is in place, so
its presence says the work is complete. `unmet` is the one completeness rule: the record
is present and of the right kind, its settings equal the current ones, its inputs have
the same content as now (utils.fingerprint.same_content: path, size, sha256) and every
output exists with its recorded size. An absent or damaged record (not JSON, not an
object, a field missing) is simply "not done": the work is redone.

Outputs are not re-hashed by the rule: they are multi-GB (TFRecords, checkpoints),
written atomically with the record last, so existence plus size already catches a
truncated, missing or replaced output at the cost of a stat; the sha256 is kept so a
person (or a test) can verify a file. An output that is a directory (e.g. one
evaluation run's folder) is recorded with the total size of the regular files under it
and `"sha256": null`: hashing a folder of checkpoints on every rerun would cost minutes,
and the stage that owns the folder checks its own content when it resumes.

Records of an older format (version 1 TFRecord sidecars, unversioned section_split
sidecars, recipe step markers and config.json) are REFUSED, not migrated: they lack
facts the rule now checks (input hashes, output sizes), and guessing them could skip
work that is not done. `read_record` raises `OldRecordError`, one line naming the file
and what to do, before anything in the folder is written.

`settings_mismatch` is the one message for a folder whose recorded settings differ from
the current ones.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from utils.atomic import write_json_atomic
from utils.cli import UserError
from utils.fingerprint import FileFacts, same_content, sha256_file

RECORD_VERSION = 2
DEFAULT_ADVICE = "use a new folder, or the same settings"
OLD_RECORD_ADVICE = "finish it with the version of this project that started it, or use a new folder"
_MAX_VALUE_CHARS = 80  # a long setting (a pipeline description) is cut in messages


class OldRecordError(UserError):
    """A record written by another version of the project's record format."""


# ----------------------------------------------------------------------------- writing

def output_entry(path: str | os.PathLike, folder: str | os.PathLike, sha256: str | None = None,
                 facts: FileFacts | None = None) -> dict[str, Any]:
    """{"path", "size", "sha256"} of one output; the path is relative to `folder` (the
    record's folder) when it lies under it, so a moved run folder keeps its records.

    A file's hash is `sha256` when the writer computed it while writing, else it comes
    from the fingerprint cache (`facts`) or is computed. With `facts`, a hash known either
    way is kept in the cache, so whoever fingerprints the same file next (e.g.
    create_pretraining_data's shard record, whose input is a text shard) does not read it
    again. A directory is recorded with the total size of the
    regular files under it and no hash (see the module docstring).
    """
    path = Path(path)
    if path.is_dir():
        size, digest = _tree_size(path), None
    else:
        size = path.stat().st_size
        compute = (lambda _: sha256) if sha256 else sha256_file
        digest = facts.get(path, "sha256", compute) if facts else compute(path)
    return {"path": _relative_to(path, Path(folder)), "size": size, "sha256": digest}


def make_record(kind: str, *, settings: dict[str, Any], inputs: dict[str, Any] | None = None,
                outputs: list[dict[str, Any]] | None = None, counts: dict[str, Any] | None = None,
                **extra: Any) -> dict[str, Any]:
    """A record of the current format (see the module docstring); `extra` keys are kept."""
    return {"kind": kind, "version": RECORD_VERSION, "settings": settings, "inputs": inputs or {},
            "outputs": outputs or [], "counts": counts or {}, **extra}


def write_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write the record atomically. Call it last, once every output is in place: its
    presence is what marks the work complete. OSError propagates (the caller names its
    folder in its own one-line error)."""
    write_json_atomic(path, record)


# ----------------------------------------------------------------------------- reading

def read_record(path: str | os.PathLike, advice: str = OLD_RECORD_ADVICE) -> dict[str, Any] | None:
    """The record at `path`; None when absent or damaged (the work is then redone).

    A readable record of another format version raises OldRecordError (see the module
    docstring); `advice` ends its message (what the user should do).
    """
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    check_version(path, record, advice)
    return record if _well_formed(record) else None


def check_version(path: str | os.PathLike, record: dict[str, Any], advice: str = OLD_RECORD_ADVICE) -> None:
    """Refuse a record of another format version with one line naming the file."""
    version = record.get("version")
    if version == RECORD_VERSION:
        return
    if isinstance(version, int) and version > RECORD_VERSION:
        raise OldRecordError(f"{path}: written by a newer version of this project (record format "
                             f"{version}; this one reads {RECORD_VERSION}); {advice}")
    found = f"format {version}" if version is not None else "unversioned format"
    raise OldRecordError(f"{path}: written by an older version of this project ({found}; this one "
                         f"reads format {RECORD_VERSION}); {advice}")


# ----------------------------------------------------------------------------- the rule

def unmet(record: dict[str, Any] | None, *, kind: str, settings: dict[str, Any],
          inputs: dict[str, Any], folder: str | os.PathLike,
          optional_inputs: Iterable[str] = ()) -> str | None:
    """Why `record` does not prove the work complete, or None when it does.

    The one completeness rule: present, of `kind` (and, through read_record, of this
    format version), settings equal, every recorded input with the same content as
    `inputs` (an input in `optional_inputs` left out now keeps its recorded value), and
    every output present under `folder` with its recorded size.
    """
    if record is None:
        return "no record"
    if record.get("kind") != kind:
        return f"a record of {record.get('kind')!r}, not {kind!r}"
    if record.get("settings") != settings:
        return "other settings"
    changed = changed_inputs(record.get("inputs") or {}, inputs, optional_inputs)
    if changed:
        return f"input {changed[0]} changed"
    for out in record.get("outputs") or []:
        path = resolve_output(out["path"], folder)
        size = _tree_size(path) if path.is_dir() else path.stat().st_size if path.is_file() else None
        if size is None:
            return f"{out['path']} is missing"
        if size != out.get("size"):
            return f"{out['path']} has {size:,} bytes, not the {out.get('size'):,} recorded"
    return None


def changed_inputs(recorded: dict[str, Any], current: dict[str, Any],
                   optional: Iterable[str] = ()) -> list[str]:
    """Names of the inputs whose content differs between a record and now, in recorded
    then current order; an optional input absent now is not a change (its results stay)."""
    optional = set(optional)
    names = list(recorded) + [n for n in current if n not in recorded]
    return [n for n in names if not same_content(recorded.get(n), current.get(n))
            and not (n in optional and current.get(n) is None)]


def resolve_output(path: str, folder: str | os.PathLike) -> Path:
    """An output's recorded path, made absolute against the record's folder."""
    return Path(path) if Path(path).is_absolute() else Path(folder) / path


# ----------------------------------------------------------------------------- messages

_UNSET = object()  # a key absent from one side (None is a value)


def settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old -> new` for every setting that differs, sorted by key."""
    def show(d: dict[str, Any], key: str) -> str:
        if key not in d:
            return "unset"
        text = repr(d[key])
        return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."
    return [f"{k}: {show(old, k)} -> {show(new, k)}"
            for k in sorted(set(old) | set(new)) if old.get(k, _UNSET) != new.get(k, _UNSET)]


def settings_mismatch(path: str | os.PathLike, old: dict[str, Any], new: dict[str, Any],
                      advice: str = DEFAULT_ADVICE) -> str | None:
    """The one message for a folder made with other settings, or None when they are equal:
    `<path>: made with other settings (k: old -> new; ...); <advice>`."""
    diff = settings_diff(old, new)
    if not diff:
        return None
    return f"{path}: made with other settings ({'; '.join(diff)}); {advice}"


def describe_input_change(old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None) -> str:
    """What differs between two fingerprint lists, for a log line (paths and sizes only)."""
    if not old:
        return "not an input before"
    if not new:
        return "no longer given"
    olds, news = {f["path"]: f for f in old}, {f["path"]: f for f in new}
    for path in sorted(set(olds) | set(news)):
        a, b = olds.get(path), news.get(path)
        if a is None or b is None:
            return f"{path} {'added' if a is None else 'gone'}"
        if a["size"] != b["size"]:
            return f"{path}: size {a['size']:,} -> {b['size']:,} bytes"
        if a["sha256"] != b["sha256"]:
            return f"{path}: content changed (same size, other sha256)"
    return "changed"


# ----------------------------------------------------------------------------- helpers

def _well_formed(record: dict[str, Any]) -> bool:
    """The record has the current format's fields with their types (else: damaged)."""
    outputs = record.get("outputs")
    return (isinstance(record.get("kind"), str) and isinstance(record.get("settings"), dict)
            and isinstance(record.get("inputs"), dict) and isinstance(record.get("counts"), dict)
            and isinstance(outputs, list)
            and all(isinstance(o, dict) and isinstance(o.get("path"), str) and isinstance(o.get("size"), int)
                    for o in outputs))


def _relative_to(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path.resolve())


def _tree_size(folder: Path) -> int:
    """Total bytes of the regular files under `folder` (symlinks not followed)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
