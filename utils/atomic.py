"""Atomic outputs: write under a temporary name in the same folder, then rename.

A killed run therefore never leaves a truncated file under its final name; a rerun sees
either the complete file or nothing (plus, at worst, a stale `*.tmp-*` file that is
ignored and overwritten).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


def temp_path_for(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside `path` (same filesystem, so rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give the final file the usual permissions (0666 & ~umask).
    os.chmod(tmp, 0o666 & ~_umask())
    return Path(tmp)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to `path`, on error delete it."""
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_paths(paths: "list[str | os.PathLike]") -> Iterator[list[Path]]:
    """atomic_path for several outputs written together: all are renamed on success,
    all temporaries deleted on error (so no output of a failed run appears)."""
    temps = [temp_path_for(p) for p in paths]
    try:
        yield temps
        for tmp, path in zip(temps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name beside `path`; on success it replaces `path`
    (the old folder is first renamed aside, so at every moment either the old or the new
    complete folder is under the final name), on error the temporary folder is removed."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        umask = _umask()
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp/mkstemp create private (0700/0600) entries
        for f in tmp.iterdir():
            os.chmod(f, 0o666 & ~umask)
        old = None
        if out.is_dir():
            if any(out.iterdir()):
                old = out.parent / f".{out.name}.old-{os.getpid()}"
                os.replace(out, old)
            else:
                out.rmdir()
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """open() that only makes `path` appear once the block finished without error."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


# Every temporary this module makes is `.NAME.tmp-XXXX` (file or folder) or, while a
# folder is swapped in, `.NAME.old-PID`.
_TEMP_NAME = re.compile(r"^\..+\.(tmp-[A-Za-z0-9_]+|old-\d+)$")
# Temporaries other writers in a run folder make: TensorFlow's tensor bundle writer
# (`model.ckpt-N.index.tempstate<random>`), its Saver's sharded-save folder
# (`model.ckpt-N_temp`, older TF `_temp_<uuid hex>`), tf.io's atomic writes
# (`checkpoint.tmp<uuid hex>`), and run_pretraining's write probe (`.write-test-XXXX`).
_FOREIGN_TEMP_NAMES = (
    re.compile(r"^.+\.tempstate\d+$"),
    re.compile(r"^.+\.ckpt(-\d+)?_temp(_[0-9a-f]{32})?$"),
    re.compile(r"^.+\.tmp[0-9a-f]{32}$"),
    re.compile(r"^\.write-test-[A-Za-z0-9_]+$"),
)


def is_temp_name(name: str) -> bool:
    """True for the names of this module's temporaries (see temp_path_for, atomic_dir) and
    of the temporaries TensorFlow writes beside checkpoints (see _FOREIGN_TEMP_NAMES)."""
    return bool(_TEMP_NAME.match(name)) or any(p.match(name) for p in _FOREIGN_TEMP_NAMES)


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the temporaries a killed run left in `folder` (and below, if `recursive`).

    Call it only while no other process writes into `folder` (the recipe holds its run
    folder lock; a stage run alone owns its output folder). Only the temporary names
    `is_temp_name` knows are touched, so user files beside them are safe. Returns what
    was removed.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    removed: list[Path] = []
    entries = root.rglob("*") if recursive else root.glob("*")
    for path in sorted(entries, key=lambda p: len(p.parts)):
        if not is_temp_name(path.name) or any(parent in removed for parent in path.parents):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed.append(path)
    return removed
