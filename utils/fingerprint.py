"""Fingerprints of input files (size, mtime_ns, sha256), with a cache so that a 4 GB
notes file is hashed once, plus a place to keep other facts computed from a file's
content (e.g. the note categories it holds) under the same key.

The cache is one small JSON file keyed by (absolute path, size, mtime_ns): an entry is
reused only while the file still has that size and mtime, so an edited file is hashed
again. It lives in `$CLINICALBERT_CACHE_DIR`, else `$XDG_CACHE_HOME/clinicalbert`, else
`~/.cache/clinicalbert`; it holds hashes and counts, never file content.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from utils.atomic import write_json_atomic

CACHE_FILE = "file_facts.json"
_CHUNK = 4 << 20


def cache_dir() -> Path:
    """Where the fingerprint cache lives (see the module docstring)."""
    explicit = os.environ.get("CLINICALBERT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clinicalbert"


def sha256_file(path: str | os.PathLike) -> str:
    """Streamed sha256 of a file's bytes (constant memory); a progress line every 30 s
    for a big file (a 4 GB notes file takes a while on a slow disk)."""
    from utils.progress import Progress

    digest = hashlib.sha256()
    size_mb = os.path.getsize(path) / 1e6
    progress = Progress("MB", total=int(size_mb), label=f"hashing {Path(path).name}", interval=30) \
        if size_mb >= 1000 else None
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress.update(len(chunk) // 1_000_000)
    return digest.hexdigest()


def _key(path: Path, st: os.stat_result) -> str:
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


class FileFacts:
    """Facts about files keyed by (path, size, mtime_ns), persisted in one JSON file.

    `get(path, name, compute)` returns the cached fact `name` of `path`, computing and
    storing it when the file is new or changed. Writes are atomic and serialised with a
    lock on the cache file, so concurrent runs never corrupt it (at worst, recompute).
    """

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.file = Path(folder or cache_dir()) / CACHE_FILE

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}  # absent or damaged cache: recompute, never fail a run for it

    def get(self, path: str | os.PathLike, name: str, compute: Callable[[Path], Any]) -> Any:
        path = Path(path).resolve()
        key = _key(path, path.stat())
        entry = self._load().get(key, {})
        if name in entry:
            return entry[name]
        value = compute(path)
        if _key(path, path.stat()) == key:  # unchanged while we read it: worth keeping
            self._store(key, name, value)
        return value

    def _store(self, key: str, name: str, value: Any) -> None:
        with contextlib.suppress(OSError):  # a read-only home must not fail a run
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.file.with_suffix(".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                data = self._load()
                prefix = key.rsplit("|", 2)[0] + "|"
                entry = data.get(key, {})
                # one entry per path: facts about an older version of the file are dropped
                data = {k: v for k, v in data.items() if not k.startswith(prefix)}
                data[key] = dict(entry, **{name: value})
                write_json_atomic(self.file, data)


def fingerprint(path: str | os.PathLike, facts: FileFacts | None = None) -> dict[str, Any]:
    """{"path", "size", "mtime_ns", "sha256"} of a file; the hash comes from the cache
    while the file's size and mtime are unchanged."""
    path = Path(path).resolve()
    st = path.stat()
    digest = (facts or FileFacts()).get(path, "sha256", sha256_file)
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}


def fingerprint_files(paths: list[str | os.PathLike], facts: FileFacts | None = None) -> list[dict[str, Any]]:
    """Fingerprints of several files, sorted by path (a stable record)."""
    facts = facts or FileFacts()
    return [fingerprint(p, facts) for p in sorted(str(Path(p).resolve()) for p in paths)]


def same_content(a: dict[str, Any] | list | None, b: dict[str, Any] | list | None) -> bool:
    """Two fingerprints (or lists of them) name the same files with the same bytes.

    Compared by path, size and hash; mtime alone (a `touch`, a copy that kept the bytes)
    does not make an input different.
    """
    def strip(x: Any) -> Any:
        if isinstance(x, list):
            return [strip(i) for i in x]
        if isinstance(x, dict):
            return {k: v for k, v in x.items() if k != "mtime_ns"}
        return x
    return strip(a) == strip(b)
