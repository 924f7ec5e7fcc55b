"""One process per folder: an exclusive `fcntl.flock` on `<folder>/.lock`.

The kernel drops the lock when the holder dies (however it dies), so there is no stale
pid to guess about; the pid written into the file is only there to tell a second command
who holds it. Children started with the lock's descriptor inherited (`pass_fds`) keep the
folder locked for as long as any of them lives, so a stage orphaned by a killed recipe
still blocks a new run from writing beside it.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from utils.cli import UserError, os_error_message

LOCK_NAME = ".lock"


class FolderBusy(UserError):
    """Another process holds the folder's lock."""


class FolderLock:
    """An exclusive, non-blocking lock on a folder, held until `release()` or exit."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> "FolderLock":
        """Take the lock or raise FolderBusy naming the folder and the holder's pid."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(os_error_message(exc, "cannot create the run folder's lock file")) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise FolderBusy(f"{self.folder} is in use by another run (pid {holder or 'unknown'}); "
                             "wait for it to end, or give another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
