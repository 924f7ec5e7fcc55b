"""Long-note scaling of the sentence splitter: one single-line segment of growing size.

    python -m bench.bench_long_note [--sizes_kb 15.5,31,62,124,1200] [--upstream_max_kb 62]

Text: synthetic clinical sentences (data_prep.synthetic_notes) joined by spaces, no
newline, so that the whole note is one segment, the worst case of the original design.
Prints CPU seconds (this process, one core) for
  * pysbd's own Segmenter (what scispaCy runs; quadratic), up to --upstream_max_kb;
  * section_split.linear_pysbd.LinearSegmenter (same spans);
  * the whole per-note work of section_split (sections, then the model-free spaCy
    pipeline: tokenizer, sentencizer, forced starts, placeholder merge, output rules).
"""
from __future__ import annotations

import argparse
import random
import time

import pysbd

from data_prep.synthetic_notes import _NoteWriter
from section_split.linear_pysbd import LinearSegmenter
from section_split.worker import pipeline, process_note


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes_kb", default="15.5,31,62,124,1200")
    p.add_argument("--upstream_max_kb", type=float, default=62)
    args = p.parse_args()
    sizes = [float(s) for s in args.sizes_kb.split(",")]
    writer = _NoteWriter(random.Random(0))
    text = ""
    while len(text) < max(sizes) * 1000:
        text += " ".join(writer.sentence() for _ in range(1000)) + " "
    nlp = pipeline(None)
    upstream = pysbd.Segmenter(language="en", clean=False, char_span=True)
    linear = LinearSegmenter()
    print(f"{'KB':>7} {'pysbd s':>9} {'linear s':>9} {'note s':>8} {'note s/MB':>10}")
    for kb in sizes:
        segment = text[: int(kb * 1000)].strip()
        up = f"{cpu(lambda: upstream.segment(segment)):9.2f}" if kb <= args.upstream_max_kb else f"{'-':>9}"
        lin = cpu(lambda: linear.segment(segment))
        note = cpu(lambda: process_note(nlp, segment, False))
        print(f"{kb:>7g} {up} {lin:9.2f} {note:8.2f} {note / (kb / 1000):10.1f}", flush=True)


if __name__ == "__main__":
    main()
