"""utils.procs: a stage's whole process tree stops with the recipe (SIGINT, SIGTERM, SIGKILL)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import still_alive
from utils.procs import StageInterrupted, group_alive, run_in_group

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")

# A "stage" that starts two pool workers (grandchildren of the caller) through
# utils.executor, writes their pids, then works for ever.
STAGE = textwrap.dedent("""
    import os, sys, time
    from utils.executor import ExecutorSettings, work_executor
    def work(i):
        time.sleep(0.05)
        return os.getpid()
    with work_executor(ExecutorSettings(num_workers=2), mp_context="fork") as ex:
        [f.result() for f in [ex.submit(work, i) for i in range(8)]]
        pids = sorted(ex._processes)  # every worker of the pool, busy or not
        with open(sys.argv[1], "w") as f:
            f.write(" ".join(map(str, [os.getpid(), *pids])))
        time.sleep(600)
""")


def _wait_for(path: Path, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return [int(x) for x in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and still_alive(pids):
        time.sleep(0.05)
    return still_alive(pids)


def test_normal_exit_returns_the_status_and_leaves_no_group(tmp_path):
    assert run_in_group([sys.executable, "-c", "import sys; sys.exit(3)"]) == 3
    assert run_in_group([sys.executable, "-c", "pass"]) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_stage_and_its_pool_workers(tmp_path, sig):
    pids_file = tmp_path / "pids"
    timer = threading.Thread(target=lambda: (_wait_for(pids_file), os.kill(os.getpid(), sig)))
    timer.start()
    with pytest.raises(StageInterrupted) as info:
        run_in_group([sys.executable, "-c", STAGE, str(pids_file)], grace_s=2)
    timer.join()
    assert info.value.signum == sig
    pids = _wait_for(pids_file)
    assert len(pids) == 3
    survivors = _gone_within(pids, 5)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == []
    assert not group_alive(pids[0])


# The same with a plain ProcessPoolExecutor: its workers do not die with the stage by
# themselves; the watchdog must kill them.
PLAIN_POOL_STAGE = STAGE.replace(
    "from utils.executor import ExecutorSettings, work_executor", "import concurrent.futures as cf, multiprocessing"
).replace('with work_executor(ExecutorSettings(num_workers=2), mp_context="fork") as ex:',
          'with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as ex:')


@pytest.mark.parametrize("stage", [STAGE, PLAIN_POOL_STAGE], ids=["work_executor", "plain_pool"])
def test_sigkill_of_the_parent_kills_stage_and_workers(tmp_path, stage):
    """The OOM killer's SIGKILL cannot be forwarded: PR_SET_PDEATHSIG takes the stage down,
    the stage's pool workers die with the stage (utils.executor sets it in them), and the
    watchdog kills the stage's group (for pools that do not)."""
    assert "cf.ProcessPoolExecutor(2" in PLAIN_POOL_STAGE
    pids_file = tmp_path / "pids"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from utils.procs import run_in_group
        run_in_group([sys.executable, "-c", {stage!r}, {str(pids_file)!r}])
    """)])
    pids = _wait_for(pids_file)
    parent.kill()
    parent.wait()
    survivors = _gone_within(pids, 5)
    for pid in survivors:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == []
