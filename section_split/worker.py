"""The per-note work of `python -m section_split`, as run in a worker process.

Runs wherever utils.executor puts it: this process, a local process pool, or a Dask
worker. Each process builds its spaCy pipeline once, on first use (or in the pool's
initializer): never inherited through fork, so a worker that Dask restarts, or a task
retried on another machine, builds its own.

A note is processed under a time budget: a note that takes longer (a pathological note,
a bug) is dropped and counted with reason "timeout", instead of stalling its worker.
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import signal
import sys
import threading
import time
from typing import Any, Iterator

from spacy.language import Language

from section_split.sections import SectionSplitError, split_sections
from section_split.sentences import build_pipeline, note_text

# (text, sentences, words, drop reason, detail, words dropped by known bug 2)
NoteResult = tuple[str, int, int, "str | None", "str | None", int]


class NoteTimeout(BaseException):
    """Raised inside the work on one note when it runs over its time budget (a
    BaseException, so that the per-note `except Exception` handlers let it through)."""


class WorkerPipelines:
    """The spaCy pipelines of this process: one per spaCy model and thread, built on
    first use. A Dask worker may run several tasks at once in threads, and a spaCy
    pipeline (its components keep per-call state, e.g. the pysbd segmenter) is not made
    to be shared between them."""

    def __init__(self) -> None:
        self._per_thread = threading.local()
        self._count_lock = threading.Lock()
        self.builds = 0            # pipelines built by this process, all threads

    def get(self, spacy_model: str | None) -> tuple[Language, str]:
        """(pipeline, description) of this thread for `spacy_model`, built if absent."""
        built = self._per_thread.__dict__.setdefault("by_model", {})
        if spacy_model not in built:
            built[spacy_model] = build_pipeline(spacy_model)
            with self._count_lock:
                self.builds += 1
        return built[spacy_model]


# The process's only pipeline state: filled by init_worker in a pool worker, or on first
# use wherever a batch runs without it (a Dask task retried on a fresh worker).
_PIPELINES = WorkerPipelines()


def pipelines_built() -> int:
    """How many pipelines this process has built (one per worker thread and model: the
    tests check that a worker builds its pipeline once, not once per batch)."""
    return _PIPELINES.builds


def pipeline(spacy_model: str | None) -> Language:
    """This thread's pipeline for `spacy_model` (built on first use)."""
    return _PIPELINES.get(spacy_model)[0]


def describe_pipeline(spacy_model: str | None) -> str:
    """What splits sentences (for the log and manifest); builds the pipeline, so a
    missing model fails here, before any work."""
    return _PIPELINES.get(spacy_model)[1]


def init_worker(spacy_model: str | None) -> None:
    """Worker start-up. A local pool worker builds its pipeline now rather than on the
    first batch, and ignores SIGINT: Ctrl-C reaches the whole process group, and the
    main process alone decides (it stops the workers). On Dask this runs in the
    worker's event-loop thread, not in the thread that will run the tasks, so the
    pipeline is left to be built there, on first use."""
    if threading.current_thread() is not threading.main_thread() or _in_dask_worker():
        return
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    pipeline(spacy_model)


def _in_dask_worker() -> bool:
    """True in a Dask worker process (a distributed Worker object lives in it)."""
    dask_worker = sys.modules.get("distributed.worker")
    return dask_worker is not None and bool(getattr(dask_worker.Worker, "_instances", ()))


# ---------------------------------------------------------------- time budget

def _raise_timeout(signum: int, frame: Any) -> None:
    raise NoteTimeout()


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise NoteTimeout in this thread if the block runs longer than `seconds`.

    In a main thread (this process, a local pool worker) a SIGALRM timer interrupts the
    work; in another thread (a Dask worker runs tasks in threads) a timer thread
    raises the exception asynchronously in the working thread. Both take effect at the
    next Python bytecode, i.e. within one regular-expression call of pysbd.
    """
    if seconds <= 0:
        yield
        return
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    target = threading.get_ident()
    done = threading.Event()

    def expire() -> None:
        if not done.wait(seconds):
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(NoteTimeout))

    timer = threading.Thread(target=expire, daemon=True)
    timer.start()
    try:
        yield
    finally:
        done.set()
        timer.join()
        # An exception set just as the block ended may still be pending: clear it so
        # that it cannot fire in unrelated code.
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)


# ---------------------------------------------------------------- one batch

def process_note(nlp: Any, text: str, fix_known_bugs: bool) -> NoteResult:
    """Sections, then sentences, of one note; an exception drops only this note.

    The detail is our own SectionSplitError message or, for anything else, the
    exception type only: other libraries' messages may quote note text.
    """
    dropped: list[str] = []
    try:
        sections = [s for s in split_sections(text, fix_known_bugs, dropped=dropped) if s]
    except SectionSplitError as exc:
        return "", 0, 0, "split_error", str(exc), 0
    except Exception as exc:  # a bug or a pathological note: count it, keep going
        return "", 0, 0, "split_error", type(exc).__name__, 0
    bug2_words = sum(len(s.split()) for s in dropped)
    try:
        docs = list(nlp.pipe(sections))
    except Exception as exc:
        return "", 0, 0, "sentence_error", type(exc).__name__, bug2_words
    out, n_sentences, n_words = note_text(docs)
    return out, n_sentences, n_words, None if n_sentences else "no_sentences", None, bug2_words


def process_batch(texts: list[str], fix_known_bugs: bool, spacy_model: str | None = None,
                  seconds_per_note: float = 0) -> list[NoteResult]:
    """One result per note text, in order (see NoteResult)."""
    nlp = pipeline(spacy_model)
    results = []
    for text in texts:
        start = time.monotonic()
        try:
            with time_budget(seconds_per_note):
                results.append(process_note(nlp, text, fix_known_bugs))
        except NoteTimeout:
            results.append(("", 0, 0, "timeout",
                            f"over the {seconds_per_note:g} s budget (--note_time_budget) after "
                            f"{time.monotonic() - start:.0f} s", 0))
    return results


def normalise_text(text: str) -> tuple[str, bool, int]:
    """(text, CRLF found, NULs removed): CRLF line endings become LF (the original's
    MIMIC export has LF; the section rules key on "\\n\\n") and NUL bytes are removed.

    DEVIATION: the original sectioned the text as read; on its LF input this changes
    nothing, and on CRLF input the rules would otherwise see no blank lines at all.
    """
    # DEVIATION: CRLF -> LF and NUL removed before sectioning (counted in the manifest)
    crlf = "\r\n" in text
    if crlf:
        text = text.replace("\r\n", "\n")
    nul = text.count("\x00")
    if nul:
        text = text.replace("\x00", "")
    return text, crlf, nul
