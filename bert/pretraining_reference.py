"""Google BERT's instance creation, almost line for line: the reference path.

`create_training_instances` and the functions below are Google's
`create_pretraining_data.py` algorithm on token strings with Python's `random.Random`
(Python 3 semantics: `round()` halves to even). Slow (~35x the C path) and ~130 bytes of
memory per byte of text: it is the obviously-correct definition that bert/_cpd_native.c
reproduces draw for draw and byte for byte, used when the native helper is not built
(`--reference` forces it) and by the tests as the yardstick.
"""
from __future__ import annotations

import collections
import logging
from typing import Sequence

from bert.pretraining_io import read_documents
from bert.tfrecord_codec import FEATURES, serialize_example
from utils.atomic import atomic_paths

log = logging.getLogger("create_pretraining_data")


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


def create_training_instances(input_files, tokenizer, max_seq_length, dupe_factor,
                              short_seq_prob, masked_lm_prob, max_predictions_per_seq, rng,
                              do_whole_word_mask: bool = False) -> list[TrainingInstance]:
    """Create `TrainingInstance`s from raw text (Google's algorithm)."""
    return instances_from_documents(read_documents(input_files, tokenizer), tokenizer,
                                    max_seq_length, dupe_factor, short_seq_prob, masked_lm_prob,
                                    max_predictions_per_seq, rng, do_whole_word_mask)


def instances_from_documents(all_documents, tokenizer, max_seq_length, dupe_factor,
                             short_seq_prob, masked_lm_prob, max_predictions_per_seq, rng,
                             do_whole_word_mask: bool = False) -> list[TrainingInstance]:
    """The part of `create_training_instances` after reading (shuffles `all_documents`)."""
    rng.shuffle(all_documents)  # FAITHFUL: the first draw of the one rng (seeded once)
    # FAITHFUL: replacement words in first-occurrence order (ids are last-id-wins: load_vocab)
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
    """Creates `TrainingInstance`s for a single document."""
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
                    # FAITHFUL: up to 10 tries for another document; the 10th pick
                    # stands even if it is this document (Google's code does so).
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
                    # FAITHFUL: the unused segments go back for the next chunk.
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
    """Creates the predictions for the masked LM objective."""
    cand_indexes: list[list[int]] = []
    for i, token in enumerate(tokens):
        if token == "[CLS]" or token == "[SEP]":
            continue
        # FAITHFUL: with whole word masking a "##" piece joins the previous candidate,
        # even across the middle [SEP] (Google's code does so).
        if do_whole_word_mask and len(cand_indexes) >= 1 and token.startswith("##"):
            cand_indexes[-1].append(i)
        else:
            cand_indexes.append([i])
    rng.shuffle(cand_indexes)

    output_tokens = list(tokens)
    # FAITHFUL: Python 3 round() halves to even (Google's code ran on Python 3 too).
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
            # FAITHFUL: 80/10/10 with TWO draws (0.8, then 0.5); one draw would shift the rest
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
        # FAITHFUL: the longer side loses a token, B when the two are equal
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert len(trunc_tokens) >= 1
        # Randomly from the front or the back, to add more randomness and avoid biases.
        if rng.random() < 0.5:
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()


# ----------------------------------------------------------------------------- writing

def instance_features(instance: TrainingInstance, tokenizer, max_seq_length: int,
                      max_predictions_per_seq: int) -> dict[str, list]:
    """The padded feature lists of one instance (Google's features, in its order)."""
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
    Each file appears atomically. Returns the number of records written. A write that
    fails (full disk) is an OSError, as on the fast path.
    """
    from utils.tf_quiet import import_tensorflow
    tf = import_tensorflow()  # heavy: only the reference path needs it

    with atomic_paths(output_files) as temps:
        writers = [tf.io.TFRecordWriter(str(t)) for t in temps]
        for inst_index, instance in enumerate(instances):
            features = instance_features(instance, tokenizer, max_seq_length,
                                         max_predictions_per_seq)
            data = serialize_example(features, feature_order)
            try:
                writers[inst_index % len(writers)].write(data)  # FAITHFUL: instance k -> file k mod n
            except tf.errors.OpError as exc:  # the writer's I/O error: "PATH; File too large"
                raise OSError(exc.message.rsplit("; ", 1)[-1]) from None
            if log_examples and inst_index < 20:
                log.info("*** Example ***\ntokens: %s\n%s", " ".join(instance.tokens),
                         "\n".join(f"{k}: {' '.join(map(str, v))}" for k, v in features.items()))
        for w in writers:
            try:
                w.close()
            except tf.errors.OpError as exc:
                raise OSError(exc.message.rsplit("; ", 1)[-1]) from None
    return len(instances)
