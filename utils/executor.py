"""Where the per-batch / per-shard work of the text stages runs: in this process, in a
local process pool, or on Dask workers (a local Dask cluster or an existing one).

Both `section_split` and `create_pretraining_data` use `work_executor`; callers submit
work and consume the futures in submission order, so outputs do not depend on where the
work ran. Dask is imported only when asked for.

Clinical text travels to the workers: with `--scheduler`, only on an isolated network
(see the README's Dask section). A local Dask cluster binds its scheduler, workers and
dashboard to 127.0.0.1.
"""
from __future__ import annotations

import concurrent.futures as cf
import concurrent.futures.process  # noqa: F401 (cf.process.BrokenProcessPool)
import contextlib
import multiprocessing
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from utils.cli import UserError
from utils.procs import die_with_parent


class ExecutorError(UserError):
    """A scheduler that cannot be reached, a bad worker count."""


@dataclass(frozen=True)
class ExecutorSettings:
    """How to run work. Exactly one of the three modes applies:
    `scheduler` (an existing Dask cluster), `dask_workers` (a local Dask cluster of that
    many single-threaded worker processes), else `num_workers` local processes
    (1 = in this process)."""
    num_workers: int = 1
    scheduler: str | None = None
    dask_workers: int | None = None

    @property
    def uses_dask(self) -> bool:
        return bool(self.scheduler) or bool(self.dask_workers)

    def describe(self) -> str:
        if self.scheduler:
            return f"Dask cluster at {self.scheduler}"
        if self.dask_workers:
            return f"local Dask cluster of {self.dask_workers} worker(s)"
        return f"{self.num_workers} local process(es)" if self.num_workers > 1 else "this process"

    def check(self) -> None:
        if self.num_workers < 1:
            raise ExecutorError(f"--num_workers must be >= 1, not {self.num_workers}")
        if self.dask_workers is not None and self.dask_workers < 1:
            raise ExecutorError(f"--dask_workers must be >= 1, not {self.dask_workers}")
        if self.scheduler and self.dask_workers:
            raise ExecutorError("give --scheduler (an existing Dask cluster) or --dask_workers "
                                "(a local one), not both")


class InlineExecutor(cf.Executor):
    """Runs each submitted call at once in this process (num_workers=1): same interface,
    no pickling, the simplest path for debugging."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, as a pool would
            future.set_exception(exc)
        return future


def worker_died(exc: BaseException) -> bool:
    """True when `exc` means a worker process died under the work (killed, out of memory),
    not that the work raised: the local pool breaks (BrokenProcessPool), Dask gives up on
    a task after its retries (distributed's KilledWorker, matched by name so that Dask is
    imported only when used)."""
    return isinstance(exc, cf.process.BrokenProcessPool) or type(exc).__name__ == "KilledWorker"


@contextlib.contextmanager
def work_executor(settings: ExecutorSettings, initializer: Callable[..., None] | None = None,
                  initargs: tuple = (), mp_context: str = "spawn") -> Iterator[cf.Executor]:
    """An Executor for `settings`; closed (workers stopped) on exit, also on error.

    `initializer(*initargs)` runs once in each local worker process. On Dask it runs once
    per worker too (registered as a worker plugin), so a worker that Dask restarts after
    a crash is initialised again. Work functions should also tolerate running without it
    (build state lazily), so that tasks retried elsewhere always find it.
    """
    settings.check()
    if settings.uses_dask:
        with _dask_executor(settings, initializer, initargs) as ex:
            yield ex
        return
    if settings.num_workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield InlineExecutor()
        return
    # Each worker dies with the stage process (PR_SET_PDEATHSIG), even when the stage is
    # SIGKILLed: a pool worker must never outlive its stage and keep a run folder busy.
    pool = cf.ProcessPoolExecutor(settings.num_workers, mp_context=multiprocessing.get_context(mp_context),
                                  initializer=_pool_worker_init, initargs=(initializer, initargs))
    try:
        yield pool
    except BaseException:
        # Do not wait for queued work on error or Ctrl-C: kill the workers now.
        manager = getattr(pool, "_executor_manager_thread", None)
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        # Let the pool's manager thread finish closing its wake-up pipe before we go on:
        # CPython 3.11's exit hook writes to that pipe without a lock and, racing with the
        # close, prints an "OSError: Bad file descriptor" traceback after a Ctrl-C.
        if manager is not None:
            manager.join(timeout=30)
        raise
    else:
        pool.shutdown(wait=True)


def _pool_worker_init(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """First thing in each local pool worker: die with the stage, then its initializer."""
    die_with_parent()
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def _dask_executor(settings: ExecutorSettings, initializer: Callable[..., None] | None,
                   initargs: tuple) -> Iterator[cf.Executor]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ExecutorError("Dask is not installed: pip install 'dask[distributed]' "
                            "(it is in requirements.txt)") from None
    cluster = None
    try:
        if settings.scheduler:
            try:
                client = Client(settings.scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise ExecutorError(f"--scheduler {settings.scheduler}: cannot connect ({exc})") from None
        else:
            cluster = LocalCluster(n_workers=settings.dask_workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None, silence_logs=40)
            client = Client(cluster)
        with client:
            if initializer is not None:
                client.register_plugin(_init_plugin(initializer, initargs), name="clinicalbert-init")
            yield client.get_executor(pure=False)
    finally:
        if cluster is not None:
            cluster.close()


def _init_plugin(initializer: Callable[..., None], initargs: tuple) -> Any:
    """A Dask WorkerPlugin that runs the stage's initializer when each worker starts
    (defined here so `distributed` is imported only when Dask is used; cloudpickle
    ships the class to the workers by value)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class InitPlugin(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            initializer(*initargs)

    return InitPlugin()
