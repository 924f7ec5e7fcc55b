"""Create masked-LM / next-sentence TFRecords, record-identical to Google BERT's script.

Spec: ../shared/specs/bert_data.md. Same flags, defaults, records and record order as
Google's `create_pretraining_data.py` (2019, with `do_whole_word_mask`) for the same
inputs, vocab and seed. Two implementations of the instance loop:

- the reference path: Google's algorithm almost line for line on token strings, with
  Python's `random.Random` (`create_training_instances` and friends below). Slow; it is
  the obviously-correct definition, used when the native helper is not built and by the
  tests/bench as the yardstick;
- the fast path (`bert/_cpd_native.c`): the same loop in C on flat int32 token ids. It
  reproduces every MT19937 draw of `random.Random` from `rng.getstate()` (spec 8), keeps
  instances compact and serialises tf.train.Example + TFRecord framing itself.

Parallel mode (`--output_dir` + `--num_workers`): every input file is its own run, written
to `DIR/<stem>.tfrecord` with a JSON sidecar; a rerun skips shards whose sidecar matches.

    python -m bert.create_pretraining_data --input_file=a.txt,b.txt --output_file=out.tfrecord \
        --vocab_file=vocab.txt --do_lower_case=False --dupe_factor=5
    python -m bert.create_pretraining_data --input_file='DIR/*.txt' --output_dir=OUT \
        --vocab_file=vocab.txt --do_lower_case=False --dupe_factor=5 --num_workers=2
"""
from __future__ import annotations

import collections
import functools
import glob
import hashlib
import json
import logging
import os
import random
import struct
import sys
import time
from array import array
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence

from bert import tokenization
from utils.atomic import atomic_paths, write_json_atomic
from utils.progress import Progress

try:
    from bert import _cpd_native
except ImportError:  # not built: the exact pure-Python path is used (and logged)
    _cpd_native = None

log = logging.getLogger("create_pretraining_data")

# Feature order inside each serialised tf.train.Example: Google inserts them in this order
# (spec 6). The original's bytes put these map entries in protobuf's hash-map order, which
# differs between runs of the original itself (the two golden files disagree), so only
# the parsed records are reproducible; `feature_order` lets tests reproduce golden bytes.
FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
            "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]", "[UNK]")
SIDECAR_VERSION = 1


class InputError(Exception):
    """Bad input or flags: reported as one line naming the file, exit status 1."""


class TrainingInstance:
    """A single training instance (sentence pair)."""

    def __init__(self, tokens, segment_ids, masked_lm_positions, masked_lm_labels,
                 is_random_next) -> None:
        self.tokens = tokens
        self.segment_ids = segment_ids
        self.is_random_next = is_random_next
        self.masked_lm_positions = masked_lm_positions
        self.masked_lm_labels = masked_lm_labels

    def __str__(self) -> str:
        s = "tokens: %s\n" % " ".join(self.tokens)
        s += "segment_ids: %s\n" % " ".join(str(x) for x in self.segment_ids)
        s += "is_random_next: %s\n" % self.is_random_next
        s += "masked_lm_positions: %s\n" % " ".join(str(x) for x in self.masked_lm_positions)
        s += "masked_lm_labels: %s\n" % " ".join(self.masked_lm_labels)
        return s + "\n"

    __repr__ = __str__


# ----------------------------------------------------------------------------- reading

def expand_input_files(input_file: str) -> list[str]:
    """Comma-separated names/globs -> files. Explicit names keep their order; each glob's
    matches are sorted (Google used tf.gfile.Glob, whose order is the filesystem's)."""
    files: list[str] = []
    for pattern in input_file.split(","):
        if not pattern:
            continue
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise InputError(f"{pattern}: input glob matches no file")
            files.extend(matches)
        else:
            files.append(pattern)
    if not files:
        raise InputError("--input_file names no file")
    for f in files:
        if not os.path.isfile(f):
            raise InputError(f"{f}: input file not found" + (" (a directory)" if os.path.isdir(f) else ""))
        if not os.access(f, os.R_OK):
            raise InputError(f"{f}: input file not readable")
    return files


def iter_lines(input_files: Sequence[str]) -> Iterator[str]:
    """Every line of every file, `strip()`-ed; lines end at b"\\n" only (spec 3).

    Google decodes bytes with errors ignored; we refuse invalid UTF-8 instead (naming the
    file and byte offset), because silently dropping bytes of a clinical note changes
    the data without anyone noticing.
    """
    for path in input_files:
        offset = 0
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise InputError(f"{path}: line {lineno}: invalid UTF-8 at byte offset "
                                     f"{offset + e.start}") from None
                offset += len(raw)
                yield line.strip()


def iter_segments(input_files: Sequence[str], tokenize: Callable[[str], list]) -> Iterator[list | None]:
    """None for each empty line (a document boundary), else the tokens of the line.

    A line whose tokenization is empty yields nothing: it neither adds a segment nor
    starts a document (spec 3). Documents continue across files.
    """
    for line in iter_lines(input_files):
        if not line:
            yield None
            continue
        tokens = tokenize(line)
        if tokens:
            yield tokens


class FlatDocuments:
    """The document store of the fast path: every token id of the input in one flat
    array (uint16 "H" when the vocab allows, else int32 "i": 2 bytes per token instead
    of a Python list's ~36). Segment j is tokens[seg_start[j]:seg_start[j+1]]; document d
    is segments doc_start[d]..doc_start[d+1] (empty documents are dropped)."""

    def __init__(self, typecode: str = "i") -> None:
        self.tokens = array(typecode)
        self.seg_start = array("q", [0])
        self.doc_start = array("q", [0])

    @property
    def num_documents(self) -> int:
        return len(self.doc_start) - 1

    @property
    def num_segments(self) -> int:
        return len(self.seg_start) - 1

    def end_document(self) -> None:
        if self.doc_start[-1] != self.num_segments:  # drop empty documents
            self.doc_start.append(self.num_segments)


def read_flat_documents(input_files: Sequence[str], tokenizer: tokenization.FullTokenizer,
                        progress: Progress | None = None) -> FlatDocuments:
    """Read and tokenize the input into a FlatDocuments store (same rules as read_documents)."""
    typecode = tokenizer.id_typecode()
    docs = FlatDocuments(typecode)
    tokenize = functools.partial(tokenizer.tokenize_to_id_bytes, typecode=typecode)
    for seg in iter_segments(input_files, tokenize):
        if seg is None:
            docs.end_document()
        else:
            docs.tokens.frombytes(seg)
            docs.seg_start.append(len(docs.tokens))
            if progress:
                progress.update(1)
    docs.end_document()
    return docs


def read_documents(input_files: Sequence[str], tokenizer) -> list[list[list[str]]]:
    """Google's reading: list of documents, each a list of token-string segments."""
    all_documents: list[list[list[str]]] = [[]]
    for seg in iter_segments(input_files, tokenizer.tokenize):
        if seg is None:
            all_documents.append([])
        else:
            all_documents[-1].append(seg)
    return [x for x in all_documents if x]


# ------------------------------------------------------------ reference instance loop

def create_training_instances(input_files, tokenizer, max_seq_length, dupe_factor,
                              short_seq_prob, masked_lm_prob, max_predictions_per_seq, rng,
                              do_whole_word_mask: bool = False) -> list[TrainingInstance]:
    """Create `TrainingInstance`s from raw text (Google's algorithm, spec 3-5)."""
    return instances_from_documents(read_documents(input_files, tokenizer), tokenizer,
                                    max_seq_length, dupe_factor, short_seq_prob, masked_lm_prob,
                                    max_predictions_per_seq, rng, do_whole_word_mask)


def instances_from_documents(all_documents, tokenizer, max_seq_length, dupe_factor,
                             short_seq_prob, masked_lm_prob, max_predictions_per_seq, rng,
                             do_whole_word_mask: bool = False) -> list[TrainingInstance]:
    """The part of `create_training_instances` after reading (shuffles `all_documents`)."""
    rng.shuffle(all_documents)
    vocab_words = list(tokenizer.vocab.keys())
    instances = []
    for _ in range(dupe_factor):
        for document_index in range(len(all_documents)):
            instances.extend(create_instances_from_document(
                all_documents, document_index, max_seq_length, short_seq_prob,
                masked_lm_prob, max_predictions_per_seq, vocab_words, rng, do_whole_word_mask))
    rng.shuffle(instances)
    return instances


def create_instances_from_document(all_documents, document_index, max_seq_length,
                                   short_seq_prob, masked_lm_prob, max_predictions_per_seq,
                                   vocab_words, rng, do_whole_word_mask: bool = False):
    """Creates `TrainingInstance`s for a single document (spec 4)."""
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
    current_chunk = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.randint(1, len(current_chunk) - 1)
                tokens_a = []
                for j in range(a_end):
                    tokens_a.extend(current_chunk[j])
                tokens_b = []
                if len(current_chunk) == 1 or rng.random() < 0.5:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    # Up to 10 tries for another document; the 10th pick stands even if
                    # it is this document (Google's behaviour, spec 4).
                    for _ in range(10):
                        random_document_index = rng.randint(0, len(all_documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # The unused segments go back for the next chunk.
                    i -= len(current_chunk) - a_end
                else:
                    is_random_next = False
                    for j in range(a_end, len(current_chunk)):
                        tokens_b.extend(current_chunk[j])
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                assert len(tokens_a) >= 1 and len(tokens_b) >= 1

                tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
                segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                tokens, masked_lm_positions, masked_lm_labels = create_masked_lm_predictions(
                    tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
                    do_whole_word_mask)
                instances.append(TrainingInstance(tokens, segment_ids, masked_lm_positions,
                                                  masked_lm_labels, is_random_next))
            current_chunk = []
            current_length = 0
        i += 1
    return instances


MaskedLmInstance = collections.namedtuple("MaskedLmInstance", ["index", "label"])


def create_masked_lm_predictions(tokens, masked_lm_prob, max_predictions_per_seq, vocab_words,
                                 rng, do_whole_word_mask: bool = False):
    """Creates the predictions for the masked LM objective (spec 5)."""
    cand_indexes: list[list[int]] = []
    for i, token in enumerate(tokens):
        if token == "[CLS]" or token == "[SEP]":
            continue
        # Whole word masking: a "##" piece joins the previous candidate, even across
        # the middle [SEP] (Google's behaviour).
        if do_whole_word_mask and len(cand_indexes) >= 1 and token.startswith("##"):
            cand_indexes[-1].append(i)
        else:
            cand_indexes.append([i])
    rng.shuffle(cand_indexes)

    output_tokens = list(tokens)
    # Python 3 round(): halves to even (spec 5).
    num_to_predict = min(max_predictions_per_seq,
                         max(1, int(round(len(tokens) * masked_lm_prob))))
    masked_lms = []
    covered_indexes = set()
    for index_set in cand_indexes:
        if len(masked_lms) >= num_to_predict:
            break
        if len(masked_lms) + len(index_set) > num_to_predict:
            continue
        if any(index in covered_indexes for index in index_set):
            continue
        for index in index_set:
            covered_indexes.add(index)
            if rng.random() < 0.8:
                masked_token = "[MASK]"
            elif rng.random() < 0.5:
                masked_token = tokens[index]
            else:
                masked_token = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            output_tokens[index] = masked_token
            masked_lms.append(MaskedLmInstance(index=index, label=tokens[index]))
    assert len(masked_lms) <= num_to_predict
    masked_lms = sorted(masked_lms, key=lambda x: x.index)
    return (output_tokens, [p.index for p in masked_lms], [p.label for p in masked_lms])


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng) -> None:
    """Truncates a pair of sequences to a maximum sequence length (in place)."""
    while True:
        if len(tokens_a) + len(tokens_b) <= max_num_tokens:
            break
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert len(trunc_tokens) >= 1
        # Randomly from the front or the back, to add more randomness and avoid biases.
        if rng.random() < 0.5:
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()


# ----------------------------------------------------------------------------- writing

def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
    return bytes([field << 3 | 2]) + _varint(len(payload)) + payload


def serialize_example(features: dict[str, list], feature_order: Sequence[str] = FEATURES) -> bytes:
    """tf.train.Example bytes (proto3: packed lists, empty lists omitted), entries in
    `feature_order`; `masked_lm_weights` is a float list, the rest int64 lists."""
    entries = b""
    for name in feature_order:
        values = features[name]
        if name == "masked_lm_weights":
            packed = struct.pack("<%df" % len(values), *values)
            feature = _len_field(2, _len_field(1, packed) if values else b"")
        else:
            packed = b"".join(_varint(v) for v in values)
            feature = _len_field(3, _len_field(1, packed) if values else b"")
        entries += _len_field(1, _len_field(1, name.encode()) + _len_field(2, feature))
    return _len_field(1, entries)


def instance_features(instance: TrainingInstance, tokenizer, max_seq_length: int,
                      max_predictions_per_seq: int) -> dict[str, list]:
    """The padded feature lists of one instance (spec 6)."""
    input_ids = tokenizer.convert_tokens_to_ids(instance.tokens)
    input_mask = [1] * len(input_ids)
    segment_ids = list(instance.segment_ids)
    assert len(input_ids) <= max_seq_length
    pad = max_seq_length - len(input_ids)
    masked_lm_positions = list(instance.masked_lm_positions)
    masked_lm_ids = tokenizer.convert_tokens_to_ids(instance.masked_lm_labels)
    masked_lm_weights = [1.0] * len(masked_lm_ids)
    mpad = max_predictions_per_seq - len(masked_lm_positions)
    return {"input_ids": input_ids + [0] * pad, "input_mask": input_mask + [0] * pad,
            "segment_ids": segment_ids + [0] * pad,
            "masked_lm_positions": masked_lm_positions + [0] * mpad,
            "masked_lm_ids": masked_lm_ids + [0] * mpad,
            "masked_lm_weights": masked_lm_weights + [0.0] * mpad,
            "next_sentence_labels": [1 if instance.is_random_next else 0]}


def write_instance_to_example_files(instances, tokenizer, max_seq_length,
                                    max_predictions_per_seq, output_files,
                                    feature_order: Sequence[str] = FEATURES,
                                    log_examples: bool = False) -> int:
    """Create TF example files from `TrainingInstance`s; instance k -> file k mod n.

    Framing is done by tf.io.TFRecordWriter (imported only here, on the reference path).
    Each file appears atomically. Returns the number of records written.
    """
    import tensorflow as tf  # heavy: only the reference path needs it

    with atomic_paths(output_files) as temps:
        writers = [tf.io.TFRecordWriter(str(t)) for t in temps]
        for inst_index, instance in enumerate(instances):
            features = instance_features(instance, tokenizer, max_seq_length,
                                         max_predictions_per_seq)
            writers[inst_index % len(writers)].write(serialize_example(features, feature_order))
            if log_examples and inst_index < 20:
                log.info("*** Example ***\ntokens: %s\n%s", " ".join(instance.tokens),
                         "\n".join(f"{k}: {' '.join(map(str, v))}" for k, v in features.items()))
        for w in writers:
            w.close()
    return len(instances)


def iter_records(path: str | os.PathLike) -> Iterator[bytes]:
    """The payloads of a TFRecord file (framing CRCs not checked: a test/logging helper)."""
    with open(path, "rb") as f:
        while True:
            head = f.read(12)
            if not head:
                return
            (n,) = struct.unpack("<Q", head[:8])
            yield f.read(n)
            f.read(4)


def parse_example(data: bytes) -> dict[str, list]:
    """Decode what `serialize_example` writes (any entry order) into {name: values}."""
    def varint(b, i):
        r = s = 0
        while True:
            c = b[i]
            i += 1
            r |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                return r, i

    def fields(b):
        i = 0
        while i < len(b):
            tag, i = varint(b, i)
            n, i = varint(b, i)
            yield tag >> 3, b[i:i + n]
            i += n

    out = {}
    for _, features in fields(data):
        for _, entry in fields(features):
            parts = dict(fields(entry))
            name = parts[1].decode()
            (kind, lst), = fields(parts[2]) if parts[2] else [(3, b"")]
            packed = dict(fields(lst)).get(1, b"")
            if kind == 2:
                out[name] = list(struct.unpack("<%df" % (len(packed) // 4), packed))
            else:
                vals, i = [], 0
                while i < len(packed):
                    v, i = varint(packed, i)
                    vals.append(v)
                out[name] = vals
    return out


# ----------------------------------------------------------------------------- one run

def check_settings(max_seq_length: int, max_predictions_per_seq: int, dupe_factor: int,
                   masked_lm_prob: float, short_seq_prob: float) -> None:
    if not 5 <= max_seq_length <= 65536:
        # 5 = [CLS] A [SEP] B [SEP] with randint(2, max_seq_length - 3) well defined.
        raise InputError(f"--max_seq_length={max_seq_length}: must be between 5 and 65536")
    if not 1 <= max_predictions_per_seq <= max_seq_length:
        raise InputError(f"--max_predictions_per_seq={max_predictions_per_seq}: must be "
                         f"between 1 and max_seq_length ({max_seq_length})")
    if not 0.0 < masked_lm_prob <= 1.0:
        raise InputError(f"--masked_lm_prob={masked_lm_prob}: must be in (0, 1]")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise InputError(f"--short_seq_prob={short_seq_prob}: must be in [0, 1]")
    if dupe_factor < 1:
        raise InputError(f"--dupe_factor={dupe_factor}: must be at least 1")


def load_tokenizer(vocab_file: str, do_lower_case: bool) -> tokenization.FullTokenizer:
    """FullTokenizer, refusing a vocab that is missing, unreadable, not UTF-8 or lacks
    one of [CLS] [SEP] [MASK] [UNK]."""
    if not os.path.isfile(vocab_file):
        raise InputError(f"{vocab_file}: vocab file not found")
    try:
        with open(vocab_file, "rb") as f:
            data = f.read()
        data.decode("utf-8")
        tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"{vocab_file}: line {line}: invalid UTF-8 at byte offset {e.start}") from None
    except OSError as e:
        raise InputError(f"{vocab_file}: cannot read vocab ({e.strerror})") from None
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.vocab]
    if missing:
        raise InputError(f"{vocab_file}: vocab lacks {' '.join(missing)}")
    return tokenizer


def run(input_files: Sequence[str], output_files: Sequence[str], tokenizer, *,
        max_seq_length: int = 128, max_predictions_per_seq: int = 20, random_seed: int = 12345,
        dupe_factor: int = 10, masked_lm_prob: float = 0.15, short_seq_prob: float = 0.1,
        do_whole_word_mask: bool = False, use_native: bool | None = None,
        feature_order: Sequence[str] = FEATURES, log_examples: bool = False,
        label: str = "") -> dict[str, int]:
    """One create_pretraining_data run; returns counts {documents, segments, instances}.

    `use_native=None` picks the C helper when it is built, else the reference path.
    """
    check_settings(max_seq_length, max_predictions_per_seq, dupe_factor, masked_lm_prob,
                   short_seq_prob)
    if sorted(feature_order) != sorted(FEATURES):
        raise ValueError(f"feature_order must be a permutation of {FEATURES}")
    native = _cpd_native is not None if use_native is None else use_native
    if native and _cpd_native is None:
        raise RuntimeError("native helper bert._cpd_native is not built "
                           "(run: python setup.py build_ext --inplace)")
    log.info("%s%s path", label + ": " if label else "",
             "native (C)" if native else "pure-Python reference")
    rng = random.Random(random_seed)
    if not native:
        documents = read_documents(input_files, tokenizer)
        if not documents:
            raise InputError(f"{','.join(input_files)}: input has no documents (no tokens)")
        counts = {"documents": len(documents), "segments": sum(map(len, documents))}
        instances = instances_from_documents(
            documents, tokenizer, max_seq_length, dupe_factor, short_seq_prob, masked_lm_prob,
            max_predictions_per_seq, rng, do_whole_word_mask)
        counts["instances"] = write_instance_to_example_files(
            instances, tokenizer, max_seq_length, max_predictions_per_seq, output_files,
            feature_order, log_examples)
        return counts

    progress = Progress("segments", label=(label + ": " if label else "") + "reading")
    docs = read_flat_documents(input_files, tokenizer, progress)
    progress.done()
    if docs.num_documents == 0:
        raise InputError(f"{','.join(input_files)}: input has no documents (no tokens)")
    order = list(range(docs.num_documents))
    rng.shuffle(order)  # the first draw: rng.shuffle(all_documents) (spec 3)
    vocab_words = list(tokenizer.vocab.keys())
    vocab_word_ids = array("i", (tokenizer.vocab[w] for w in vocab_words))
    is_subword = bytearray(len(tokenizer.inv_vocab) and max(tokenizer.inv_vocab) + 1)
    if do_whole_word_mask:
        for tok, idx in tokenizer.vocab.items():
            is_subword[idx] = tok.startswith("##")
    special = [tokenizer.vocab[t] for t in ("[CLS]", "[SEP]", "[MASK]")]
    order_idx = [FEATURES.index(n) for n in feature_order]
    prefix = label + ": " if label else ""
    phases = (Progress("documents", total=docs.num_documents * dupe_factor, label=prefix + "instances"),
              Progress("records", label=prefix + "writing"))
    with atomic_paths(output_files) as temps:
        n = _cpd_native.create_and_write(
            docs.tokens, docs.seg_start, docs.doc_start, array("q", order), rng.getstate()[1],
            vocab_word_ids, bytes(is_subword), *special, max_seq_length,
            max_predictions_per_seq, dupe_factor, short_seq_prob, masked_lm_prob,
            bool(do_whole_word_mask), [str(t) for t in temps], order_idx,
            lambda phase, k: phases[phase].update(k))
        for p in phases:
            p.done()
    if log_examples:
        _log_examples(output_files, tokenizer)
    return {"documents": docs.num_documents, "segments": docs.num_segments, "instances": n}


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


# ------------------------------------------------------------------ parallel shards

def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_plan(input_files: Sequence[str], output_dir: str, settings: dict, options: dict,
               seed_per_shard: bool) -> list[dict]:
    """One job per input file (in expanded --input_file order): its output and the
    `settings` (everything that decides the records, incl. the vocab's sha256) its sidecar
    must match; `options` (vocab path, path choice, logging) do not change the records."""
    stems = [Path(f).stem for f in input_files]
    dupes = {s for s in stems if stems.count(s) > 1}
    if dupes:
        raise InputError(f"{sorted(dupes)[0]}: two input files share this stem; "
                         "--output_dir needs distinct file names")
    jobs = []
    for index, path in enumerate(input_files):
        s = dict(settings, random_seed=settings["random_seed"] + (index if seed_per_shard else 0))
        jobs.append({"input": path, "output": str(Path(output_dir) / f"{stems[index]}.tfrecord"),
                     "settings": s, "options": options})
    return jobs


def _sidecar_matches(job: dict, size: int, sha: str) -> bool:
    side = Path(job["output"] + ".json")
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return False
    out_size = os.path.getsize(job["output"]) if os.path.isfile(job["output"]) else -1
    return (meta.get("version") == SIDECAR_VERSION and meta.get("output_size") == out_size
            and meta.get("settings") == job["settings"]
            and meta.get("input", {}).get("size") == size
            and meta.get("input", {}).get("sha256") == sha)


def run_shard(job: dict) -> tuple[str, dict | None]:
    """Process one shard unless its sidecar says it is done; returns (output, counts|None)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    size, sha = os.path.getsize(job["input"]), _sha256(job["input"])
    if _sidecar_matches(job, size, sha):
        return job["output"], None
    s, o = dict(job["settings"]), dict(job["options"])
    vocab_file = o.pop("vocab_file")
    if _sha256(vocab_file) != s.pop("vocab_sha256"):
        raise InputError(f"{vocab_file}: vocab file changed during the run")
    tokenizer = load_tokenizer(vocab_file, s.pop("do_lower_case"))
    counts = run([job["input"]], [job["output"]], tokenizer, label=Path(job["input"]).name, **s, **o)
    # The sidecar is written last: its presence (with matching sizes) marks a finished shard.
    write_json_atomic(job["output"] + ".json", {
        "version": SIDECAR_VERSION, "settings": job["settings"],
        "input": {"path": job["input"], "size": size, "sha256": sha},
        "output_size": os.path.getsize(job["output"]), "counts": counts})
    return job["output"], counts


def run_shards(jobs: list[dict], num_workers: int) -> dict[str, int]:
    """Run shard jobs on `num_workers` processes; the result does not depend on it."""
    total = {"shards": len(jobs), "skipped": 0, "documents": 0, "segments": 0, "instances": 0}
    if num_workers <= 1:
        results = map(run_shard, jobs)
    else:
        # By module path, not this function object: under `python -m` this module is
        # __main__, which workers cannot always look up by name.
        from bert.create_pretraining_data import run_shard as shard_fn
        pool = ProcessPoolExecutor(max_workers=num_workers)
        results = pool.map(shard_fn, jobs)
    try:
        for output, counts in results:
            if counts is None:
                total["skipped"] += 1
                log.info("%s: up to date (sidecar matches), skipped", output)
            else:
                for k, v in counts.items():
                    total[k] += v
    finally:
        if num_workers > 1:
            pool.shutdown(cancel_futures=True)
    return total


# ------------------------------------------------------------------------------- CLI

def define_flags() -> None:
    """Google's flags and defaults (spec 7) plus parallel-mode and logging options."""
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
    flags.DEFINE_integer("num_workers", 1, "Processes for --output_dir mode.")
    flags.DEFINE_bool("seed_per_shard", False, "In --output_dir mode, shard i uses random_seed + i.")
    flags.DEFINE_bool("log_examples", False, "Log the first 20 examples (token text!), like Google.")
    flags.DEFINE_bool("reference", False, "Use the slow pure-Python reference path.")
    flags.mark_flags_as_required(["input_file", "vocab_file"])


def main(argv) -> int:
    from absl import flags
    FLAGS = flags.FLAGS
    del argv
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    start = time.time()
    try:
        if (FLAGS.output_file is None) == (FLAGS.output_dir is None):
            raise InputError("give exactly one of --output_file and --output_dir")
        if FLAGS.num_workers < 1:
            raise InputError(f"--num_workers={FLAGS.num_workers}: must be at least 1")
        check_settings(FLAGS.max_seq_length, FLAGS.max_predictions_per_seq, FLAGS.dupe_factor,
                       FLAGS.masked_lm_prob, FLAGS.short_seq_prob)
        input_files = expand_input_files(FLAGS.input_file)
        tokenizer = load_tokenizer(FLAGS.vocab_file, FLAGS.do_lower_case)
        settings = dict(max_seq_length=FLAGS.max_seq_length,
                        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
                        random_seed=FLAGS.random_seed, dupe_factor=FLAGS.dupe_factor,
                        masked_lm_prob=FLAGS.masked_lm_prob, short_seq_prob=FLAGS.short_seq_prob,
                        do_whole_word_mask=FLAGS.do_whole_word_mask)
        options = dict(use_native=False if FLAGS.reference else None,
                       log_examples=FLAGS.log_examples)
        if FLAGS.output_file is not None:
            outputs = [o for o in FLAGS.output_file.split(",") if o]
            if not outputs:
                raise InputError("--output_file names no file")
            if FLAGS.num_workers > 1:
                log.warning("--num_workers applies to --output_dir mode only; one process runs")
            log.info("*** Reading from %d input files, writing to %d files ***",
                     len(input_files), len(outputs))
            counts = run(input_files, outputs, tokenizer, **settings, **options)
        else:
            settings.update(vocab_sha256=_sha256(FLAGS.vocab_file), do_lower_case=FLAGS.do_lower_case)
            options.update(vocab_file=os.path.abspath(FLAGS.vocab_file))
            jobs = shard_plan(input_files, FLAGS.output_dir, settings, options, FLAGS.seed_per_shard)
            counts = run_shards(jobs, FLAGS.num_workers)
    except InputError as e:
        print(f"create_pretraining_data: error: {e}", file=sys.stderr)
        return 1
    log.info("Done in %.1f s: %s", time.time() - start,
             ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    from absl import app
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
