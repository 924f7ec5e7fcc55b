r"""Create masked-LM / next-sentence TFRecords, record-identical to Google BERT's script.

Same flags, defaults, records and record order as Google's `create_pretraining_data.py`
(2019, with `do_whole_word_mask`) for the same inputs, vocab and seed. Two
implementations of the instance loop:

- the reference path: Google's algorithm almost line for line on token strings, with
  Python's `random.Random` (bert.pretraining_reference). Slow, and
  ~130 bytes of memory per byte of text; it is the obviously-correct definition, used
  when the native helper is not built and by the tests/bench as the yardstick;
- the fast path (`bert/_cpd_native.c`): the same loop in C on a flat uint16/int32
  document store (bert.pretraining_io.FlatDocuments). It reproduces every MT19937 draw
  of `random.Random` from `rng.getstate()`, keeps each instance as references into the
  store plus its masking decisions (~3 bytes of peak memory per byte of text in all),
  and serialises tf.train.Example + TFRecord framing itself.

Per-shard mode (`--output_dir`, bert.pretraining_shards): every input file is its own
run, written to `DIR/<stem>.tfrecord` with a JSON sidecar, on `--num_workers` local
processes or Dask workers (`--dask_workers N`, `--scheduler ADDRESS`); a rerun skips
shards whose sidecar matches.

    python -m bert.create_pretraining_data --input_file=a.txt,b.txt --output_file=out.tfrecord \
        --vocab_file=vocab.txt --do_lower_case=False --dupe_factor=5
    python -m bert.create_pretraining_data --input_file='DIR/*.txt' --output_dir=OUT \
        --vocab_file=vocab.txt --do_lower_case=False --dupe_factor=5 --num_workers=2
"""
from __future__ import annotations

import logging
import os
import random
import sys
import time
from array import array
from typing import Sequence

from bert.pretraining_io import (FlatDocuments, InputError, OutputError,  # noqa: F401
                                 check_output_folder, check_settings, load_tokenizer,
                                 output_errors, read_documents, read_flat_documents,
                                 remove_stale_output_temps)
from bert.pretraining_reference import (create_training_instances, instances_from_documents,  # noqa: F401
                                        write_instance_to_example_files)
from bert.pretraining_shards import run_shards, shard_plan
from bert.tfrecord_codec import FEATURES, iter_records, parse_example  # noqa: F401
from utils.atomic import atomic_paths
from utils.cli import UsageError, absl_run
from utils.executor import ExecutorSettings
from utils.files import expand_input_files
from utils.fingerprint import sha256_file
from utils.progress import Progress

try:
    from bert import _cpd_native
except ImportError:  # not built: the exact pure-Python path is used (and logged)
    _cpd_native = None

log = logging.getLogger("create_pretraining_data")


# ----------------------------------------------------------------------------- one run

def run(input_files: Sequence[str], output_files: Sequence[str], tokenizer, *,
        max_seq_length: int = 128, max_predictions_per_seq: int = 20, random_seed: int = 12345,
        dupe_factor: int = 10, masked_lm_prob: float = 0.15, short_seq_prob: float = 0.1,
        do_whole_word_mask: bool = False, use_native: bool | None = None,
        feature_order: Sequence[str] = FEATURES, log_examples: bool = False,
        label: str = "") -> dict[str, int]:
    """One create_pretraining_data run; returns counts {documents, segments, instances}.

    `use_native=None` picks the C helper when it is built, else the reference path. The
    outputs appear together and only on success; an unwritable or full output folder is
    an OutputError naming it (the partial temps are removed).
    """
    check_settings(max_seq_length, max_predictions_per_seq, dupe_factor, masked_lm_prob,
                   short_seq_prob)
    if sorted(feature_order) != sorted(FEATURES):
        raise ValueError(f"feature_order must be a permutation of {FEATURES}")
    native = _cpd_native is not None if use_native is None else use_native
    if native and _cpd_native is None:
        raise RuntimeError("native helper bert._cpd_native is not built "
                           "(run: pip install -e . in the project folder, with a C compiler)")
    prefix = label + ": " if label else ""
    log.info("%s%s path", prefix, "native (C)" if native else "pure-Python reference")
    if use_native is None and not native:
        log.warning("%sthe native helper is not built (pip install -e . with a C compiler builds it): the "
                    "reference path is ~35x slower and needs ~130 bytes of memory per byte of text",
                    prefix)
    settings = dict(max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions_per_seq,
                    dupe_factor=dupe_factor, short_seq_prob=short_seq_prob,
                    masked_lm_prob=masked_lm_prob, do_whole_word_mask=do_whole_word_mask)
    rng = random.Random(random_seed)
    if not native:
        return _run_reference(input_files, output_files, tokenizer, rng, settings,
                              feature_order, log_examples)
    progress = Progress("segments", label=prefix + "reading")
    docs = read_flat_documents(input_files, tokenizer, progress)
    progress.done()
    if docs.num_documents == 0:
        raise InputError(f"{','.join(input_files)}: input has no documents (no tokens)")
    with output_errors(_folders(output_files)), atomic_paths(output_files) as temps:
        n = _write_native(docs, [str(t) for t in temps], tokenizer, rng, settings,
                          feature_order, prefix)
    if log_examples:  # DEVIATION: Google always logged 20 examples; clinical text is opt-in
        _log_examples(output_files, tokenizer)
    return {"documents": docs.num_documents, "segments": docs.num_segments, "instances": n}


def _folders(paths: Sequence[str]) -> str:
    """The output folder(s), for error messages."""
    return ", ".join(sorted({os.path.dirname(os.path.abspath(p)) for p in paths}))


def _run_reference(input_files, output_files, tokenizer, rng, settings, feature_order,
                   log_examples) -> dict[str, int]:
    """Google's algorithm on token strings (bert.pretraining_reference), TF's writer."""
    documents = read_documents(input_files, tokenizer)
    if not documents:
        raise InputError(f"{','.join(input_files)}: input has no documents (no tokens)")
    counts = {"documents": len(documents), "segments": sum(map(len, documents))}
    s = settings
    instances = instances_from_documents(
        documents, tokenizer, s["max_seq_length"], s["dupe_factor"], s["short_seq_prob"],
        s["masked_lm_prob"], s["max_predictions_per_seq"], rng, s["do_whole_word_mask"])
    with output_errors(_folders(output_files)):
        counts["instances"] = write_instance_to_example_files(
            instances, tokenizer, s["max_seq_length"], s["max_predictions_per_seq"],
            output_files, feature_order, log_examples)
    return counts


def _write_native(docs: FlatDocuments, paths: list[str], tokenizer, rng: random.Random,
                  settings: dict, feature_order: Sequence[str], prefix: str) -> int:
    """The C instance loop, shuffle and writing on `docs`; returns the number of records."""
    order = list(range(docs.num_documents))
    rng.shuffle(order)  # the first draw: rng.shuffle(all_documents)
    # FAITHFUL: replacement words in first-occurrence order (ids are last-id-wins: load_vocab)
    vocab_words = list(tokenizer.vocab.keys())
    vocab_word_ids = array("i", (tokenizer.vocab[w] for w in vocab_words))
    is_subword = bytearray(len(tokenizer.inv_vocab) and max(tokenizer.inv_vocab) + 1)
    if settings["do_whole_word_mask"]:
        for tok, idx in tokenizer.vocab.items():
            is_subword[idx] = tok.startswith("##")
    special = [tokenizer.vocab[t] for t in ("[CLS]", "[SEP]", "[MASK]")]
    s = settings
    phases = (Progress("documents", total=docs.num_documents * s["dupe_factor"], label=prefix + "instances"),
              Progress("records", label=prefix + "writing"))
    n = _cpd_native.create_and_write(
        docs.tokens, docs.seg_start, docs.doc_start, array("q", order), rng.getstate()[1],
        vocab_word_ids, bytes(is_subword), *special, s["max_seq_length"],
        s["max_predictions_per_seq"], s["dupe_factor"], s["short_seq_prob"], s["masked_lm_prob"],
        bool(s["do_whole_word_mask"]), paths, [FEATURES.index(n) for n in feature_order],
        lambda phase, k: phases[phase].update(k))
    for p in phases:
        p.done()
    return n


def _log_examples(output_files: Sequence[str], tokenizer, n: int = 20) -> None:
    """Google logs the first 20 examples; here only on request (--log_examples)."""
    iters = [iter_records(f) for f in output_files]
    for index in range(n):
        rec = next(iters[index % len(iters)], None)
        if rec is None:
            return
        feats = parse_example(rec)
        ids = feats["input_ids"][:sum(feats["input_mask"])]
        log.info("*** Example ***\ntokens: %s\n%s", " ".join(tokenizer.convert_ids_to_tokens(ids)),
                 "\n".join(f"{name}: {' '.join(map(str, v))}" for name, v in feats.items()))


# ------------------------------------------------------------------------------- CLI

def define_flags() -> None:
    """Google's flags and defaults plus the per-shard mode, executor and logging options."""
    from absl import flags
    flags.DEFINE_string("input_file", None, "Input raw text file (or comma-separated list of files).")
    flags.DEFINE_string("output_file", None, "Output TF example file (or comma-separated list of files).")
    flags.DEFINE_string("vocab_file", None, "The vocabulary file that the BERT model was trained on.")
    flags.DEFINE_bool("do_lower_case", True, "Whether to lower case the input text. Should be True "
                      "for uncased models and False for cased models.")
    flags.DEFINE_bool("do_whole_word_mask", False, "Whether to use whole word masking rather "
                      "than per-WordPiece masking.")
    flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.")
    flags.DEFINE_integer("max_predictions_per_seq", 20, "Maximum number of masked LM predictions per sequence.")
    flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
    flags.DEFINE_integer("dupe_factor", 10, "Number of times to duplicate the input data (with different masks).")
    flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
    flags.DEFINE_float("short_seq_prob", 0.1, "Probability of creating sequences which are "
                       "shorter than the maximum length.")
    flags.DEFINE_string("output_dir", None, "Parallel mode (instead of --output_file): each input "
                        "file is an independent run written to DIR/<stem>.tfrecord (+ .json sidecar).")
    flags.DEFINE_integer("num_workers", 1, "Local processes running shards at once in --output_dir "
                         "mode (each holds ~3 bytes of memory per byte of its shard's text).")
    flags.DEFINE_string("scheduler", None, "--output_dir mode on an existing Dask cluster at this "
                        "address (e.g. tcp://10.0.0.5:8786; note text travels to its workers: "
                        "isolated networks only). Paths must be the same on every worker.")
    flags.DEFINE_integer("dask_workers", None, "--output_dir mode on a local Dask cluster of this "
                         "many single-threaded worker processes (bound to 127.0.0.1).")
    flags.DEFINE_bool("seed_per_shard", False, "In --output_dir mode, shard i uses random_seed + i.")
    # DEVIATION: --log_examples is opt-in (Google logged the first 20 examples' tokens always)
    flags.DEFINE_bool("log_examples", False, "Log the first 20 examples (token text!), like Google.")
    flags.DEFINE_bool("reference", False, "Use the slow pure-Python reference path.")
    flags.mark_flags_as_required(["input_file", "vocab_file"])


def main(argv: Sequence[str]) -> int:
    """The CLI: validate everything (flags, inputs, vocab, output folder) before any
    work, then one run (--output_file) or the per-shard mode (--output_dir)."""
    from absl import flags
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise UsageError(f"unexpected argument {argv[1]!r} (every option is a --flag)")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    start = time.time()
    if (FLAGS.output_file is None) == (FLAGS.output_dir is None):
        raise UsageError("give exactly one of --output_file and --output_dir")
    executor = ExecutorSettings(num_workers=FLAGS.num_workers, scheduler=FLAGS.scheduler,
                                dask_workers=FLAGS.dask_workers)
    executor.check()
    check_settings(FLAGS.max_seq_length, FLAGS.max_predictions_per_seq, FLAGS.dupe_factor,
                   FLAGS.masked_lm_prob, FLAGS.short_seq_prob)
    input_files = expand_input_files(FLAGS.input_file)
    tokenizer = load_tokenizer(FLAGS.vocab_file, FLAGS.do_lower_case)
    settings = dict(max_seq_length=FLAGS.max_seq_length,
                    max_predictions_per_seq=FLAGS.max_predictions_per_seq,
                    random_seed=FLAGS.random_seed, dupe_factor=FLAGS.dupe_factor,
                    masked_lm_prob=FLAGS.masked_lm_prob, short_seq_prob=FLAGS.short_seq_prob,
                    do_whole_word_mask=FLAGS.do_whole_word_mask)
    options = dict(use_native=False if FLAGS.reference else None, log_examples=FLAGS.log_examples)
    if FLAGS.output_file is not None:
        counts = _main_one_run(input_files, FLAGS.output_file, tokenizer, settings, options, executor)
    else:
        check_output_folder(FLAGS.output_dir)
        settings.update(vocab_sha256=sha256_file(FLAGS.vocab_file), do_lower_case=FLAGS.do_lower_case)
        options.update(vocab_file=os.path.abspath(FLAGS.vocab_file))
        jobs = shard_plan(input_files, FLAGS.output_dir, settings, options, FLAGS.seed_per_shard)
        counts = run_shards(jobs, executor, run)
    log.info("Done in %.1f s: %s", time.time() - start,
             ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    return 0


def _main_one_run(input_files: list[str], output_file: str, tokenizer, settings: dict,
                  options: dict, executor: ExecutorSettings) -> dict[str, int]:
    outputs = [o for o in output_file.split(",") if o]
    if not outputs:
        raise UsageError("--output_file names no file")
    if executor.uses_dask or executor.num_workers > 1:
        log.warning("--num_workers, --dask_workers and --scheduler apply to --output_dir mode "
                    "only; one process runs")
    for folder in sorted({os.path.dirname(os.path.abspath(o)) for o in outputs}):
        check_output_folder(folder)
    removed = sum(remove_stale_output_temps(o) for o in outputs)
    if removed:
        log.info("removed %d temp file(s) left by an earlier, interrupted run", removed)
    log.info("*** Reading from %d input files, writing to %d files ***", len(input_files), len(outputs))
    return run(input_files, outputs, tokenizer, **settings, **options)


def _cli() -> None:
    define_flags()
    absl_run("create_pretraining_data", main)


if __name__ == "__main__":
    _cli()
