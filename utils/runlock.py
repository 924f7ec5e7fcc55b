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
import time
from pathlib import Path

from utils.cli import UserError, os_error_message

LOCK_NAME = ".lock"
ORPHAN_WAIT_S = 5.0


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
        if not self._try_lock(fd):
            holder = _read_pid(fd)
            # A live holder is refused at once. A dead one whose lock is still held left a
            # stage that has the descriptor and is dying (PR_SET_PDEATHSIG is
            # asynchronous): give it a few seconds.
            orphans_gone = (holder is None or not _alive(holder)) and self._wait_for_orphans(fd)
            if not orphans_gone:
                os.close(fd)
                holder = _read_pid_path(self.path) or holder
                if holder is not None and not _alive(holder):
                    raise FolderBusy(f"{self.folder} is still locked by a process of a run whose "
                                     f"command (pid {holder}) has ended; find it with `fuser {self.path}`")
                raise FolderBusy(f"{self.folder} is in use by another run (pid {holder or 'unknown'}); "
                                 "wait for it to end, or give another folder")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    @staticmethod
    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _wait_for_orphans(self, fd: int, seconds: float = ORPHAN_WAIT_S) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self._try_lock(fd):
                return True
        return False

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True


def _read_pid_path(path: Path) -> int | None:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
