"""The pretraining model of Google BERT's `run_pretraining.py`: the masked-LM and
next-sentence heads, their losses, and `model_fn` (Google's functions and names).

Also `replica_forward`: the same heads as additive pieces (loss numerators, label-weight
sums, correct counts) so that a global batch split over replicas gives exactly the
single-device losses once the pieces are summed (bert.distribute).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import tensorflow as tf

from bert import modeling, optimization
from bert.checkpoints import init_from_checkpoint

tf1 = tf.compat.v1


# ---------------------------------------------------------------------------- heads


def gather_indexes(sequence_tensor: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
    """Gathers the vectors at the specific positions over a minibatch (flattened)."""
    sequence_shape = modeling.get_shape_list(sequence_tensor, expected_rank=3)
    batch_size, seq_length, width = sequence_shape
    flat_offsets = tf.reshape(tf.range(0, batch_size, dtype=tf.int32) * seq_length, [-1, 1])
    flat_positions = tf.reshape(positions + flat_offsets, [-1])
    flat_sequence_tensor = tf.reshape(sequence_tensor, [batch_size * seq_length, width])
    return tf.gather(flat_sequence_tensor, flat_positions)


def get_masked_lm_output(bert_config: modeling.BertConfig, input_tensor: tf.Tensor,
                         output_weights: tf.Tensor, positions: tf.Tensor,
                         label_ids: tf.Tensor, label_weights: tf.Tensor):
    """Loss and log-probs for the masked LM (decoder tied to the word embeddings).

    Returns (loss, per_example_loss, log_probs); loss is the weighted mean
    `sum(w * l) / (sum(w) + 1e-5)`.
    """
    input_tensor = gather_indexes(input_tensor, positions)
    with tf1.variable_scope("cls/predictions"):
        # An extra non-linear transform before the output layer; only used in pretraining.
        with tf1.variable_scope("transform"):
            input_tensor = modeling.dense(
                input_tensor, bert_config.hidden_size,
                activation=modeling.get_activation(bert_config.hidden_act),
                kernel_initializer=modeling.create_initializer(bert_config.initializer_range))
            input_tensor = modeling.layer_norm(input_tensor)
        # Output weights = input embeddings; only a per-token output bias is added.
        output_bias = tf1.get_variable("output_bias", shape=[bert_config.vocab_size],
                                       initializer=tf1.zeros_initializer())
        logits = tf.matmul(input_tensor, output_weights, transpose_b=True)
        logits = tf.nn.bias_add(logits, output_bias)
        log_probs = tf.nn.log_softmax(logits, axis=-1)

        label_ids = tf.reshape(label_ids, [-1])
        label_weights = tf.reshape(label_weights, [-1])
        one_hot_labels = tf.one_hot(label_ids, depth=bert_config.vocab_size, dtype=tf.float32)
        # Padding predictions have weight 0; they do not count.
        per_example_loss = -tf.reduce_sum(log_probs * one_hot_labels, axis=[-1])
        numerator = tf.reduce_sum(label_weights * per_example_loss)
        denominator = tf.reduce_sum(label_weights) + 1e-5  # FAITHFUL: Google's 1e-5
        loss = numerator / denominator
    return loss, per_example_loss, log_probs


def get_next_sentence_output(bert_config: modeling.BertConfig, input_tensor: tf.Tensor,
                             labels: tf.Tensor):
    """Loss and log-probs for next sentence prediction (0 = is next, 1 = random)."""
    with tf1.variable_scope("cls/seq_relationship"):
        output_weights = tf1.get_variable(
            "output_weights", shape=[2, bert_config.hidden_size],
            initializer=modeling.create_initializer(bert_config.initializer_range))
        output_bias = tf1.get_variable("output_bias", shape=[2],
                                       initializer=tf1.zeros_initializer())
        logits = tf.matmul(input_tensor, output_weights, transpose_b=True)
        logits = tf.nn.bias_add(logits, output_bias)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        labels = tf.reshape(labels, [-1])
        one_hot_labels = tf.one_hot(labels, depth=2, dtype=tf.float32)
        per_example_loss = -tf.reduce_sum(one_hot_labels * log_probs, axis=-1)
        loss = tf.reduce_mean(per_example_loss)
    return loss, per_example_loss, log_probs


# ---------------------------------------------------------------------------- model_fn


class PretrainingSpec(NamedTuple):
    """What Google's model_fn handed to the Estimator, as plain tensors."""
    mode: str                      # "train" or "eval"
    loss: tf.Tensor                # total loss (masked LM + next sentence)
    train_op: tf.Operation | None  # train mode only
    tensors: dict                  # per-batch scalars: mlm/nsp loss and accuracy
    eval_metrics: dict             # eval mode: name -> (value_op, update_op)
    initialized_variable_names: dict


def model_fn_builder(bert_config: modeling.BertConfig, init_checkpoint: str | None,
                     learning_rate: float, num_train_steps: int, num_warmup_steps: int,
                     use_tpu: bool = False, use_one_hot_embeddings: bool = False, *,
                     compute_type: tf.DType = tf.float32) -> Callable[..., PretrainingSpec]:
    """Returns `model_fn(features, labels, mode, params) -> PretrainingSpec`.

    As in Google's, trainable variables present in `init_checkpoint` get it as their
    initial value (a shape mismatch raises ValueError naming the variable and shapes).
    """
    def model_fn(features: dict, labels: Any, mode: str, params: dict) -> PretrainingSpec:
        del labels, params
        is_training = mode == "train"
        model = modeling.BertModel(
            config=bert_config, is_training=is_training, input_ids=features["input_ids"],
            input_mask=features["input_mask"], token_type_ids=features["segment_ids"],
            use_one_hot_embeddings=use_one_hot_embeddings, compute_type=compute_type)
        (mlm_loss, mlm_example_loss, mlm_log_probs) = get_masked_lm_output(
            bert_config, model.get_sequence_output(), model.get_embedding_table(),
            features["masked_lm_positions"], features["masked_lm_ids"],
            features["masked_lm_weights"])
        (ns_loss, ns_example_loss, ns_log_probs) = get_next_sentence_output(
            bert_config, model.get_pooled_output(), features["next_sentence_labels"])
        total_loss = mlm_loss + ns_loss

        tvars = tf1.trainable_variables()
        initialized = {}
        if init_checkpoint:
            initialized = init_from_checkpoint(tvars, init_checkpoint)

        mlm_pred = tf.argmax(mlm_log_probs, axis=-1, output_type=tf.int32)
        mlm_ids = tf.reshape(features["masked_lm_ids"], [-1])
        mlm_w = tf.reshape(features["masked_lm_weights"], [-1])
        ns_pred = tf.argmax(ns_log_probs, axis=-1, output_type=tf.int32)
        ns_labels = tf.reshape(features["next_sentence_labels"], [-1])
        tensors = {
            "masked_lm_loss": mlm_loss,
            "next_sentence_loss": ns_loss,
            "masked_lm_accuracy": tf.reduce_sum(
                mlm_w * tf.cast(tf.equal(mlm_pred, mlm_ids), tf.float32))
            / tf.maximum(tf.reduce_sum(mlm_w), 1e-12),
            "next_sentence_accuracy": tf.reduce_mean(
                tf.cast(tf.equal(ns_pred, ns_labels), tf.float32)),
        }
        train_op, metrics = None, {}
        if is_training:
            train_op = optimization.create_optimizer(
                total_loss, learning_rate, num_train_steps, num_warmup_steps, use_tpu,
                dynamic_loss_scale=compute_type == tf.float16)
        else:
            # Google's metric_fn: tf.metrics over all eval batches.
            metrics = {
                "masked_lm_accuracy": tf1.metrics.accuracy(
                    labels=mlm_ids, predictions=mlm_pred, weights=mlm_w),
                "masked_lm_loss": tf1.metrics.mean(
                    values=tf.reshape(mlm_example_loss, [-1]), weights=mlm_w),
                "next_sentence_accuracy": tf1.metrics.accuracy(
                    labels=ns_labels, predictions=ns_pred),
                "next_sentence_loss": tf1.metrics.mean(values=ns_example_loss),
                "loss": tf1.metrics.mean(total_loss),  # the Estimator's own "loss"
            }
        return PretrainingSpec(mode, total_loss, train_op, tensors, metrics, initialized)

    return model_fn


def replica_forward(bert_config: modeling.BertConfig, features: dict, *, is_training: bool,
                    compute_type: tf.DType = tf.float32) -> dict:
    """One replica's slice of a batch through the model and both heads, as sums.

    Returns scalars: `mlm_numerator` = sum(w * masked-LM loss), `mlm_weight` = sum(w),
    `nsp_sum` = sum of next-sentence losses, `mlm_correct`, `nsp_correct`. The global
    losses are sum(mlm_numerator) / (sum(mlm_weight) + 1e-5) and sum(nsp_sum) / batch,
    Google's formulas over the whole batch (a per-replica normaliser would differ).
    """
    model = modeling.BertModel(
        config=bert_config, is_training=is_training, input_ids=features["input_ids"],
        input_mask=features["input_mask"], token_type_ids=features["segment_ids"],
        compute_type=compute_type)
    _, mlm_example_loss, mlm_log_probs = get_masked_lm_output(
        bert_config, model.get_sequence_output(), model.get_embedding_table(),
        features["masked_lm_positions"], features["masked_lm_ids"],
        features["masked_lm_weights"])
    _, ns_example_loss, ns_log_probs = get_next_sentence_output(
        bert_config, model.get_pooled_output(), features["next_sentence_labels"])
    mlm_w = tf.reshape(features["masked_lm_weights"], [-1])
    mlm_ids = tf.reshape(features["masked_lm_ids"], [-1])
    mlm_pred = tf.argmax(mlm_log_probs, axis=-1, output_type=tf.int32)
    ns_pred = tf.argmax(ns_log_probs, axis=-1, output_type=tf.int32)
    ns_labels = tf.reshape(features["next_sentence_labels"], [-1])
    return {
        "mlm_numerator": tf.reduce_sum(mlm_w * mlm_example_loss),
        "mlm_weight": tf.reduce_sum(mlm_w),
        "nsp_sum": tf.reduce_sum(ns_example_loss),
        "mlm_correct": tf.reduce_sum(mlm_w * tf.cast(tf.equal(mlm_pred, mlm_ids), tf.float32)),
        "nsp_correct": tf.reduce_sum(tf.cast(tf.equal(ns_pred, ns_labels), tf.float32)),
    }
