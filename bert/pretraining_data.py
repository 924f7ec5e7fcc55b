"""Reading pretraining TFRecords (the input side of Google BERT's `run_pretraining.py`).

Records hold the seven features create_pretraining_data writes (bert.tfrecord_codec.FEATURES).
The training pipeline follows Google's `input_fn_builder` in run_pretraining.py: file
list repeated and shuffled, up to 4
files read interleaved, record shuffle buffer 100, fixed batches (remainder dropped).
Changes that keep that behaviour but make it deterministic and fast: everything is
seeded and order-preserving (so a given seed gives the same batches whatever the
parallelism), records are batched raw and parsed with one vectorised `parse_example`
per batch, and the pipeline prefetches. `skip_batches` lets a resumed run continue with
the batch an uninterrupted run would have seen next.
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

from utils.cli import UserError

tf1 = tf.compat.v1

INT_FEATURES_SEQ = ("input_ids", "input_mask", "segment_ids")
INT_FEATURES_PRED = ("masked_lm_positions", "masked_lm_ids")
CYCLE_LENGTH = 4  # Google's num_cpu_threads: files read interleaved.
SHUFFLE_BUFFER = 100


def name_to_features(max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """The `tf.io.parse_example` spec of a pretraining record."""
    spec = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64)
            for name in INT_FEATURES_SEQ}
    spec.update({name: tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64)
                 for name in INT_FEATURES_PRED})
    spec["masked_lm_weights"] = tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32)
    spec["next_sentence_labels"] = tf.io.FixedLenFeature([1], tf.int64)
    return spec


class RecordError(UserError):
    """Pretraining records that do not fit the flags or the model (file named)."""


def check_record_shapes(input_files: list[str], max_seq_length: int,
                        max_predictions_per_seq: int, vocab_size: int | None = None) -> int:
    """Check the first record of every file against the length flags (and the model's
    vocabulary) before training.

    A mismatch (e.g. records made with max_predictions_per_seq=20 read with 22, as the
    published clinical scripts did, or token ids >= vocab_size: records made with a larger
    vocabulary than bert_config's) raises RecordError naming the file, the feature and
    the fix. Returns the number of files checked.
    """
    # DEVIATION: records whose lengths disagree with the flags are refused (22 vs 20)
    expected = {name: max_seq_length for name in INT_FEATURES_SEQ}
    expected.update({name: max_predictions_per_seq
                     for name in INT_FEATURES_PRED + ("masked_lm_weights",)})
    expected["next_sentence_labels"] = 1
    for path in input_files:
        try:
            raw = next(iter(tf.data.TFRecordDataset(path).take(1)), None)  # eager
            raw = None if raw is None else raw.numpy()
        except tf.errors.OpError as e:
            raise RecordError(f"{path}: cannot read TFRecords ({e.message.splitlines()[0]})") \
                from None
        if raw is None:
            raise RecordError(f"{path}: no records")
        try:
            example = tf.train.Example.FromString(raw)
        except Exception:  # protobuf DecodeError
            raise RecordError(f"{path}: record 0 is not a tf.train.Example") from None
        feats = example.features.feature
        for name, want in expected.items():
            if name not in feats:
                raise RecordError(f"{path}: record 0 has no feature '{name}'")
            kind = feats[name].WhichOneof("kind")
            got = len(getattr(feats[name], kind).value) if kind else 0
            if got != want:
                if name in INT_FEATURES_SEQ:
                    fix = f"--max_seq_length={got} (it is {max_seq_length})"
                elif name == "next_sentence_labels":
                    fix = "records made by create_pretraining_data"
                else:
                    fix = f"--max_predictions_per_seq={got} (it is {max_predictions_per_seq})"
                raise RecordError(f"{path}: record 0 feature '{name}' has length {got}, "
                                  f"expected {want}; use {fix}")
        if vocab_size is not None:
            _check_token_ids(path, feats, vocab_size)
    return len(input_files)


def _check_token_ids(path: str, feats, vocab_size: int) -> None:
    for name in ("input_ids", "masked_lm_ids"):
        top = max(feats[name].int64_list.value, default=0)
        if top >= vocab_size:
            raise RecordError(f"{path}: record 0 feature '{name}' holds token id {top} >= "
                              f"vocab_size {vocab_size} of the BERT config: the records were made "
                              "with a larger vocabulary than the model's (use the bert_config "
                              "that goes with the vocab.txt the records were made with)")


def _parse_batch(serialized: tf.Tensor, spec: dict) -> dict:
    """Parse a batch of serialized examples; int64 -> int32 (as Google's _decode_record)."""
    example = tf.io.parse_example(serialized, spec)
    return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t
            for name, t in example.items()}


def input_fn_builder(input_files: list[str], max_seq_length: int, max_predictions_per_seq: int,
                     is_training: bool, num_cpu_threads: int = 4, seed: int | None = None,
                     skip_batches: int = 0, rows: tuple[int, int] | None = None
                     ) -> Callable[[dict], tf.data.Dataset]:
    """Google-compatible builder: returns `input_fn(params)`, `params["batch_size"]`.

    Training: files repeated + shuffled, `min(4, len(files))` read interleaved,
    shuffle buffer 100. Evaluation: files in order, repeated, no shuffle.
    `rows=(start, count)`: keep only those rows of every batch (a worker's slice of the
    global batch; taken before parsing, so each worker parses only its own records).
    """
    spec = name_to_features(max_seq_length, max_predictions_per_seq)

    def input_fn(params: dict) -> tf.data.Dataset:
        batch_size = params["batch_size"]
        if is_training:
            d = tf.data.Dataset.from_tensor_slices(tf.constant(input_files))
            d = d.repeat()
            d = d.shuffle(buffer_size=len(input_files), seed=seed)
            cycle_length = min(CYCLE_LENGTH, len(input_files))
            d = d.interleave(tf.data.TFRecordDataset, cycle_length=cycle_length,
                             num_parallel_calls=cycle_length, deterministic=True)
            d = d.shuffle(buffer_size=SHUFFLE_BUFFER, seed=seed)
        else:
            d = tf.data.TFRecordDataset(input_files)
            d = d.repeat()
        d = d.batch(batch_size, drop_remainder=True)
        if skip_batches:
            d = d.skip(skip_batches)  # raw strings: cheap, no parsing
        if rows is not None:
            start, count = rows
            d = d.map(lambda s: s[start:start + count])
        d = d.map(lambda s: _parse_batch(s, spec), num_parallel_calls=max(1, num_cpu_threads),
                  deterministic=True)
        return d.prefetch(tf.data.AUTOTUNE)

    return input_fn
