"""Child processes that die with their parent, and a whole process tree stopped at once.

The recipe runs each stage as a subprocess, and stages run worker pools (grandchildren of
the recipe). A user who presses Ctrl-C, a `kill`, or the OOM killer's SIGKILL must never
leave a stage or a worker still writing into the run folder. Two mechanisms together:

  * `die_with_parent()`: Linux `prctl(PR_SET_PDEATHSIG, SIGKILL)`, so the kernel kills a
    process when its parent dies, even by SIGKILL (set in the stage by the recipe, and in
    each pool worker by `utils.executor`, so the chain recipe -> stage -> worker holds).
  * `run_in_group()`: the stage leads its own process group; SIGINT/SIGTERM received by the
    recipe are forwarded to the whole group, which gets a few seconds to stop and is then
    killed; the group is killed again when the stage ends, so no orphaned grandchild
    (a pool worker is not reached by PDEATHSIG of its grandparent) survives it.
  * a watchdog per stage for the one signal that cannot be forwarded: when the recipe is
    SIGKILLed (the OOM killer), the pipe it held closes and the watchdog kills the stage's
    whole group, pool workers included, whatever pool the stage uses.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from typing import Sequence

PR_SET_PDEATHSIG = 1
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StageInterrupted(Exception):
    """The recipe got SIGINT/SIGTERM while a stage ran; the stage's group was stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only;
    a no-op elsewhere). Safe in a preexec_fn or a pool initializer."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _stage_preexec() -> None:
    """In the forked child, before exec: a new process group led by the stage, and death
    with the recipe."""
    os.setpgid(0, 0)
    die_with_parent()


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Send `sig` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # the pgid was reused by someone else's group: not ours
        return False


def group_alive(pgid: int) -> bool:
    """True while any process of group `pgid` exists (signal 0 probes without sending)."""
    return kill_group(pgid, 0)


# The watchdog: blocks on a pipe whose only writer is the recipe. "x" means the stage
# ended normally; end-of-file without it means the recipe died: kill the stage's group.
_WATCHDOG = """
import os, signal, sys
pgid, fd = int(sys.argv[1]), int(sys.argv[2])
try:
    ended = os.read(fd, 1) == b"x"
except OSError:
    ended = False
if not ended:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


def _start_watchdog(pgid: int) -> tuple[subprocess.Popen, int]:
    """(watchdog process, write end of its pipe) for the stage group `pgid`. The watchdog
    has its own session, so the terminal's Ctrl-C does not reach it."""
    read_fd, write_fd = os.pipe()  # not inheritable: stages started later never hold it
    try:
        dog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(pgid), str(read_fd)], pass_fds=(read_fd,),
                               stdin=subprocess.DEVNULL, start_new_session=True)
    except BaseException:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    return dog, write_fd


def _stop_watchdog(dog: subprocess.Popen, write_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.write(write_fd, b"x")
    os.close(write_fd)
    with contextlib.suppress(subprocess.TimeoutExpired):
        dog.wait(timeout=5)


def run_in_group(cmd: Sequence[str], *, cwd: str | None = None, env: dict | None = None,
                 pass_fds: Sequence[int] = (), grace_s: float = 5.0) -> int:
    """Run `cmd` as the leader of a new process group and return its exit status.

    While it runs, SIGINT/SIGTERM sent to this process are forwarded to the whole group;
    the group gets `grace_s` seconds to exit, then is killed, and StageInterrupted is
    raised. Whatever happens, every process left in the group is killed before returning.
    """
    received: list[int] = []
    leader: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        if leader:
            kill_group(leader[0], signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS}
    proc = None
    watchdog = None
    deadline = None
    try:
        # Popen returns after the child's exec, so its group exists before any forwarding.
        # stdin from /dev/null: a stage outside the terminal's foreground group that read
        # the terminal would be stopped (SIGTTIN).
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, pass_fds=tuple(pass_fds),
                                stdin=subprocess.DEVNULL, preexec_fn=_stage_preexec)
        leader.append(proc.pid)
        watchdog = _start_watchdog(proc.pid)
        if received:  # a signal came while the stage was starting
            kill_group(proc.pid, received[0])
        while True:
            try:
                code = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if received and deadline is None:
                    deadline = time.monotonic() + grace_s
                if deadline is not None and time.monotonic() >= deadline:
                    kill_group(proc.pid, signal.SIGKILL)
                    code = proc.wait()
                    break
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if proc is not None:
            if received and deadline is None:
                deadline = time.monotonic() + grace_s
            remaining = max(0.0, deadline - time.monotonic()) if deadline is not None else 0.0
            _stop_group(proc.pid, remaining)
            with contextlib.suppress(Exception):
                proc.wait(timeout=1)
        if watchdog is not None:
            _stop_watchdog(*watchdog)
    if received:
        raise StageInterrupted(received[0])
    return code


def _stop_group(pgid: int, grace_s: float) -> None:
    """Let the group's remaining processes exit for up to `grace_s` seconds (they were
    already signalled), then SIGKILL whatever is left (e.g. workers orphaned by the stage)."""
    deadline = time.monotonic() + grace_s
    while grace_s and group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    kill_group(pgid, signal.SIGKILL)
