"""utils.runlock: one process per folder; the kernel frees the lock when the holder dies."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from utils.runlock import FolderBusy, FolderLock


def _hold(folder: Path) -> subprocess.Popen:
    """Another process that takes the lock and waits for stdin to close."""
    code = ("import sys; from utils.runlock import FolderLock; "
            f"lock = FolderLock({str(folder)!r}).acquire(); print('held', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_holder_is_refused_with_the_pid_then_admitted_after_exit(tmp_path):
    holder = _hold(tmp_path)
    with pytest.raises(FolderBusy, match=rf"{tmp_path} is in use by another run \(pid {holder.pid}\)"):
        FolderLock(tmp_path).acquire()
    holder.kill()  # however it dies, the lock goes with it
    holder.wait()
    with FolderLock(tmp_path) as lock:
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
        assert lock.fd is not None


def test_a_child_given_the_descriptor_keeps_the_folder_locked(tmp_path):
    lock = FolderLock(tmp_path).acquire()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=(lock.fd,))
    try:
        lock.release()  # the recipe is gone, its stage is not
        with pytest.raises(FolderBusy):
            FolderLock(tmp_path).acquire()
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            FolderLock(tmp_path).acquire().release()
            break
        except FolderBusy:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_dying_orphan_of_a_dead_holder_is_waited_for_briefly(tmp_path):
    """The recipe was SIGKILLed; its stage, which inherited the lock, dies a moment later."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = FolderLock(tmp_path).acquire()
    os.pwrite(lock.fd, f"{int(dead.stdout)}\n".encode(), 0)  # the holder's pid: a process now gone
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"], pass_fds=(lock.fd,))
    lock.release()
    try:
        with FolderLock(tmp_path) as again:  # waits for the orphan to exit, then takes the lock
            assert orphan.poll() is not None and again.fd is not None
    finally:
        orphan.kill()
        orphan.wait()
