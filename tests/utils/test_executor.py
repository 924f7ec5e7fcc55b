"""utils.executor: modes, settings checks, and a clean stop when the work is interrupted."""
from __future__ import annotations

import concurrent.futures.process as cfp
import os
import time

import pytest

from utils.executor import ExecutorError, ExecutorSettings, work_executor, worker_died


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_inline_mode_runs_in_this_process():
    with work_executor(ExecutorSettings(num_workers=1)) as ex:
        assert ex.submit(_pid_after, 0).result() == os.getpid()


def test_pool_mode_runs_elsewhere_and_keeps_submission_order():
    with work_executor(ExecutorSettings(num_workers=2), mp_context="fork") as ex:
        futures = [ex.submit(pow, i, 2) for i in range(20)]
        assert [f.result() for f in futures] == [i * i for i in range(20)]
        assert ex.submit(_pid_after, 0).result() != os.getpid()


@pytest.mark.parametrize("settings, message", [
    (ExecutorSettings(num_workers=0), "--num_workers must be >= 1"),
    (ExecutorSettings(dask_workers=0), "--dask_workers must be >= 1"),
    (ExecutorSettings(scheduler="tcp://127.0.0.1:1", dask_workers=2), "not both"),
])
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ExecutorError, match=message):
        with work_executor(settings):
            pass


def test_an_interrupted_pool_is_fully_closed_before_the_error_propagates():
    """After Ctrl-C inside the pool, the pool's manager thread has closed its wake-up
    pipe by the time the KeyboardInterrupt leaves `work_executor`; otherwise CPython's
    exit hook can race with that close and print an `OSError: Bad file descriptor`
    traceback at exit (seen once in CI)."""
    with pytest.raises(KeyboardInterrupt):
        with work_executor(ExecutorSettings(num_workers=2), mp_context="fork") as ex:
            futures = [ex.submit(_pid_after, 5) for _ in range(4)]
            time.sleep(0.3)  # both workers busy
            manager, wakeup = ex._executor_manager_thread, ex._executor_manager_thread_wakeup
            raise KeyboardInterrupt
    assert not manager.is_alive()
    assert wakeup._closed
    assert all(f.cancelled() or f.done() for f in futures)


def test_a_killed_worker_reads_as_a_dead_worker_not_as_a_failed_task():
    with pytest.raises(cfp.BrokenProcessPool) as info:
        with work_executor(ExecutorSettings(num_workers=2), mp_context="fork") as ex:
            ex.submit(os._exit, 1).result()
    assert worker_died(info.value)
    assert not worker_died(ValueError("a task that raised"))
