"""section_split.worker's pipelines: one per thread and model, built once, by the worker
initializer or on first use by a batch that runs without it."""
from __future__ import annotations

import threading

from section_split import worker
from section_split.sentences import MODEL_FREE_SPLITTER


def _in_thread(fn):
    """fn() run in a new thread; its result."""
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join(120)
    assert not thread.is_alive()
    return out[0]


def test_a_thread_builds_its_pipeline_once_and_others_build_their_own():
    mine = worker.pipeline(None)
    builds = worker.pipelines_built()
    assert worker.pipeline(None) is mine and worker.pipelines_built() == builds   # reused, not rebuilt
    theirs = _in_thread(lambda: worker.pipeline(None))
    assert theirs is not mine and worker.pipelines_built() == builds + 1
    assert (theirs.get_pipe("clinical_pysbd_sentencizer").segmenter
            is not mine.get_pipe("clinical_pysbd_sentencizer").segmenter)
    assert worker.describe_pipeline(None) == MODEL_FREE_SPLITTER and worker.pipelines_built() == builds + 1


def test_a_batch_without_the_initializer_builds_what_it_needs_with_the_same_output():
    # e.g. a Dask task retried on a fresh worker: no init_worker ran in its thread
    texts = ["Pain resolved. Went home.", "Seen by [**Name - Doe**] today.\n\nPlan: rest."]
    builds = worker.pipelines_built()
    fresh = _in_thread(lambda: worker.process_batch(texts, False))
    assert worker.pipelines_built() == builds + 1
    worker.init_worker(None)        # this (main) thread: built here now, or already
    assert worker.process_batch(texts, False) == fresh
    # the blank line ends a section; the placeholder is one token, its "-" no boundary
    assert [r[0] for r in fresh] == ["Pain resolved.\nWent home.\n\n",
                                     "Seen by [**Name - Doe**] today.\nPlan: rest.\n\n"]
