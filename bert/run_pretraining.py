"""Masked LM + next sentence pretraining (Google BERT `run_pretraining.py`), TF 2.21.

`tf.estimator` is gone, so training is a plain `tf.compat.v1.Session` loop with a
`Saver`; everything a user sees of the original is kept: the flags (spec bert_model.md
section 5; TPU flags accepted and ignored), the heads and losses (section 3), the
optimizer (section 4), checkpoints `output_dir/model.ckpt-STEP` + `checkpoint` loadable
by Google's code, `eval_results.txt`. Added: automatic resume (newest checkpoint in
output_dir: weights, slots, step, and the input position), `--keep_checkpoint_max`,
progress lines, TensorBoard scalars, `training_config.json`, `--use_xla`, `--use_amp`,
checks of the inputs before any work, and a clean stop on a non-finite loss.

Run: python -m bert.run_pretraining --bert_config_file=... --input_file=... \
         --output_dir=... --do_train [--init_checkpoint=...] [--do_eval]
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__" and any(a.split("=")[0] == "--use_xla" and
                                  a.split("=", 1)[-1].lower() not in ("false", "0")
                                  for a in sys.argv[1:]):
    # XLA auto-clustering on CPU only happens with this flag, read when TF starts.
    os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "")
                                  + " --tf_xla_cpu_global_jit").strip()

import dataclasses  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable, NamedTuple  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from bert import modeling, optimization  # noqa: E402
from bert.pretraining_data import (check_record_shapes, expand_input_files,  # noqa: E402
                                   input_fn_builder)
from utils.atomic import write_json_atomic, write_text_atomic  # noqa: E402
from utils.progress import Progress  # noqa: E402

tf1 = tf.compat.v1
FLAGS = flags.FLAGS
AMP_DTYPES = {"float16": tf.float16, "bfloat16": tf.bfloat16}


def define_flags(fv: flags.FlagValues = FLAGS) -> None:
    """Google's flags plus this project's. Defined on demand, not at import, so that other
    modules with the same flag names (create_pretraining_data) can share a process."""
    s, i, b, f = flags.DEFINE_string, flags.DEFINE_integer, flags.DEFINE_bool, flags.DEFINE_float
    s("bert_config_file", None, "The config json file of the pre-trained BERT model.",
      flag_values=fv)
    s("input_file", None, "Input TF example files (can be a glob or comma separated).",
      flag_values=fv)
    s("output_dir", None, "The output directory where checkpoints will be written.",
      flag_values=fv)
    s("init_checkpoint", None, "Initial checkpoint (usually from a pre-trained BERT model).",
      flag_values=fv)
    i("max_seq_length", 128, "Maximum sequence length; must match the records.", flag_values=fv)
    i("max_predictions_per_seq", 20, "Maximum masked LM predictions per sequence; must match "
      "the records.", flag_values=fv)
    b("do_train", False, "Whether to run training.", flag_values=fv)
    b("do_eval", False, "Whether to run eval on the dev set.", flag_values=fv)
    i("train_batch_size", 32, "Total batch size for training.", flag_values=fv)
    i("eval_batch_size", 8, "Total batch size for eval.", flag_values=fv)
    f("learning_rate", 5e-5, "The initial learning rate for Adam.", flag_values=fv)
    i("num_train_steps", 100000, "Number of training steps.", flag_values=fv)
    i("num_warmup_steps", 10000, "Number of warmup steps.", flag_values=fv)
    i("save_checkpoints_steps", 1000, "How often to save the model checkpoint.", flag_values=fv)
    i("iterations_per_loop", 1000, "Accepted for compatibility (TPU); ignored.", flag_values=fv)
    i("max_eval_steps", 100, "Maximum number of eval steps.", flag_values=fv)
    b("use_tpu", False, "Accepted for compatibility; ignored (no TPU support).", flag_values=fv)
    s("tpu_name", None, "Ignored.", flag_values=fv)
    s("tpu_zone", None, "Ignored.", flag_values=fv)
    s("gcp_project", None, "Ignored.", flag_values=fv)
    s("master", None, "Ignored.", flag_values=fv)
    i("num_tpu_cores", 8, "Ignored.", flag_values=fv)
    # This project's additions.
    i("keep_checkpoint_max", 5, "How many recent checkpoints to keep (0 = all).",
      flag_values=fv)
    i("log_every_n_steps", 100, "Progress line and TensorBoard scalars every N steps.",
      flag_values=fv)
    i("seed", 12345, "Graph-level random seed (data order, dropout, fresh initialisers).",
      flag_values=fv)
    b("use_xla", False, "XLA auto-clustering (JIT); same checkpoints.", flag_values=fv)
    b("use_amp", False, "Mixed precision: compute in --amp_dtype, float32 master weights.",
      flag_values=fv)
    flags.DEFINE_enum("amp_dtype", "bfloat16", ["float16", "bfloat16"],
                      "Compute type with --use_amp (float16 adds dynamic loss scaling).",
                      flag_values=fv)
    i("num_intra_threads", 0, "TF intra-op threads (0 = TF's choice).", flag_values=fv)
    i("num_inter_threads", 0, "TF inter-op threads (0 = TF's choice).", flag_values=fv)
    b("do_lower_case", None, "Informational: recorded in training_config.json.",
      flag_values=fv)


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
        denominator = tf.reduce_sum(label_weights) + 1e-5
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


def _checkpoint_exists(prefix: str) -> bool:
    return tf.io.gfile.exists(prefix + ".index")


def _check_shapes(variables: list, checkpoint: str, what: str) -> dict:
    """{name: variable} of `variables` found in `checkpoint`; ValueError on a shape clash."""
    ckpt_shapes = dict(tf.train.list_variables(checkpoint))
    found = {}
    for var in variables:
        name = var.op.name
        if name not in ckpt_shapes:
            continue
        want, got = var.shape.as_list(), list(ckpt_shapes[name])
        if want != got:
            raise ValueError(f"{what} {checkpoint}: variable '{name}' has shape {got} in the "
                             f"checkpoint but {want} in the model (check bert_config_file)")
        found[name] = var
    return found


def init_from_checkpoint(tvars: list, init_checkpoint: str) -> dict:
    """Initialise each trainable variable present in `init_checkpoint` from it (optimizer
    slots and global_step start fresh). Logs loaded and fresh variables, as Google's did."""
    if not _checkpoint_exists(init_checkpoint):
        raise ValueError(f"--init_checkpoint={init_checkpoint}: checkpoint not found")
    _check_shapes(tvars, init_checkpoint, "--init_checkpoint")
    assignment_map, initialized = modeling.get_assignment_map_from_checkpoint(
        tvars, init_checkpoint)
    tf1.train.init_from_checkpoint(init_checkpoint, assignment_map)
    logging.info("**** Trainable Variables ****")
    fresh = []
    for var in tvars:
        init_string = ", *INIT_FROM_CKPT*" if var.name in initialized else ""
        if not init_string:
            fresh.append(var.op.name)
        logging.info("  name = %s, shape = %s%s", var.name, var.shape, init_string)
    logging.info("init_checkpoint %s: %d of %d trainable variables loaded; fresh: %s",
                 init_checkpoint, len(tvars) - len(fresh), len(tvars),
                 ", ".join(fresh) if fresh else "none")
    return initialized


# ---------------------------------------------------------------------------- training


@dataclasses.dataclass
class Options:
    """Everything a run needs (the CLI fills it from flags; tests and the bench directly)."""
    bert_config_file: str
    input_file: str
    output_dir: str
    init_checkpoint: str | None = None
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    do_train: bool = False
    do_eval: bool = False
    train_batch_size: int = 32
    eval_batch_size: int = 8
    learning_rate: float = 5e-5
    num_train_steps: int = 100000
    num_warmup_steps: int = 10000
    save_checkpoints_steps: int = 1000
    max_eval_steps: int = 100
    keep_checkpoint_max: int = 5
    log_every_n_steps: int = 100
    seed: int = 12345
    use_xla: bool = False
    use_amp: bool = False
    amp_dtype: str = "bfloat16"
    num_intra_threads: int = 0
    num_inter_threads: int = 0

    @property
    def compute_type(self) -> tf.DType:
        return AMP_DTYPES[self.amp_dtype] if self.use_amp else tf.float32


class NonFiniteLossError(RuntimeError):
    pass


def session_config(opts: Options) -> tf1.ConfigProto:
    config = tf1.ConfigProto(intra_op_parallelism_threads=opts.num_intra_threads,
                             inter_op_parallelism_threads=opts.num_inter_threads,
                             allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    if opts.use_xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return config


def validate(opts: Options) -> tuple[modeling.BertConfig, list[str]]:
    """All checks that can fail before any work: raise ValueError with a one-line message."""
    if not opts.do_train and not opts.do_eval:
        raise ValueError("At least one of `do_train` or `do_eval` must be True.")
    for name in ("bert_config_file", "input_file", "output_dir"):
        if not getattr(opts, name):
            raise ValueError(f"--{name} is required")
    bert_config = modeling.load_bert_config(opts.bert_config_file)
    if opts.max_seq_length > bert_config.max_position_embeddings:
        raise ValueError(
            f"--max_seq_length={opts.max_seq_length} is larger than max_position_embeddings="
            f"{bert_config.max_position_embeddings} in {opts.bert_config_file}")
    for name in ("train_batch_size", "eval_batch_size", "num_train_steps",
                 "save_checkpoints_steps", "log_every_n_steps", "max_eval_steps"):
        if getattr(opts, name) <= 0:
            raise ValueError(f"--{name} must be positive (got {getattr(opts, name)})")
    if opts.num_warmup_steps < 0:
        raise ValueError(f"--num_warmup_steps must be >= 0 (got {opts.num_warmup_steps})")
    input_files = expand_input_files(opts.input_file)
    check_record_shapes(input_files, opts.max_seq_length, opts.max_predictions_per_seq)
    if opts.init_checkpoint and not _checkpoint_exists(opts.init_checkpoint):
        raise ValueError(f"--init_checkpoint={opts.init_checkpoint}: checkpoint not found")
    _check_writable(opts.output_dir)
    return bert_config, input_files


def _check_writable(output_dir: str) -> None:
    try:
        os.makedirs(output_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=output_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"--output_dir={output_dir}: not writable ({e.strerror})") from None


def _restorer(saver: tf1.train.Saver, latest: str | None) -> Callable[[tf1.Session], None]:
    """Build (before the graph is finalised) what restores everything from `latest`
    (resume) or runs the initialisers (fresh start).

    Non-trainable extras absent from the checkpoint (e.g. `loss_scale` when resuming an
    fp32 run with float16 AMP) start fresh; anything else missing is an error.
    """
    local_init = tf1.local_variables_initializer()
    if latest is None:
        init = tf1.global_variables_initializer()
        return lambda sess: sess.run([init, local_init])
    gvars = tf1.global_variables()
    found = _check_shapes(gvars, latest, "checkpoint")
    missing = [v for v in gvars if v.op.name not in found]
    trainable = set(id(v) for v in tf1.trainable_variables())
    bad = [v.op.name for v in missing if id(v) in trainable
           or v.op.name.endswith(("/adam_m", "/adam_v")) or v.op.name == "global_step"]
    if bad:
        raise ValueError(f"checkpoint {latest}: lacks variable '{bad[0]}' of the model "
                         f"({len(bad)} missing); is output_dir from another model?")
    if not missing:
        return lambda sess: (sess.run(local_init), saver.restore(sess, latest))
    logging.info("not in %s, starting fresh: %s", latest, ", ".join(v.op.name for v in missing))
    partial = tf1.train.Saver(var_list=list(found.values()))
    init_missing = tf1.variables_initializer(missing)
    return lambda sess: (sess.run([local_init, init_missing]), partial.restore(sess, latest))


def _summary(tag_values: dict) -> tf1.Summary:
    return tf1.Summary(value=[tf1.Summary.Value(tag=k, simple_value=float(v))
                              for k, v in tag_values.items()])


def _build_spec(opts: Options, bert_config: modeling.BertConfig, input_files: list[str],
                latest: str | None, mode: str, **input_kwargs):
    """In the current graph: the input pipeline and model_fn for `mode` ("train"/"eval"),
    as the Estimator wired input_fn to model_fn. `init_checkpoint` only applies when
    output_dir holds no checkpoint yet."""
    tf1.set_random_seed(opts.seed)
    batch_size = opts.train_batch_size if mode == "train" else opts.eval_batch_size
    dataset = input_fn_builder(input_files, opts.max_seq_length, opts.max_predictions_per_seq,
                               is_training=mode == "train", **input_kwargs)(
        {"batch_size": batch_size})
    features = tf1.data.make_one_shot_iterator(dataset).get_next()
    model_fn = model_fn_builder(
        bert_config, None if latest else opts.init_checkpoint, opts.learning_rate,
        opts.num_train_steps, opts.num_warmup_steps, compute_type=opts.compute_type)
    return model_fn(features, None, mode, {"batch_size": batch_size})


def train(opts: Options, bert_config: modeling.BertConfig, input_files: list[str],
          extra_config: dict | None = None) -> int:
    """Train until global_step == num_train_steps, resuming from output_dir if it holds a
    checkpoint. Returns the final global step."""
    latest = tf1.train.latest_checkpoint(opts.output_dir)
    start_step = int(tf.train.load_variable(latest, "global_step")) if latest else 0
    if latest:
        logging.info("Resuming from %s (global_step %d); skipping the %d batches already "
                     "trained on", latest, start_step, start_step)
    if start_step >= opts.num_train_steps:
        logging.info("Already trained to step %d >= num_train_steps %d; nothing to do",
                     start_step, opts.num_train_steps)
        return start_step

    graph = tf.Graph()
    with graph.as_default():
        # On resume, skip the batches already trained on so that the data order is the
        # one an uninterrupted run would have had (the Estimator restarted it instead).
        spec = _build_spec(opts, bert_config, input_files, latest, "train",
                           seed=opts.seed, skip_batches=start_step)
        global_step = tf1.train.get_global_step()
        learning_rate = optimization.learning_rate_schedule(
            global_step, opts.learning_rate, opts.num_train_steps, opts.num_warmup_steps)
        saver = tf1.train.Saver(max_to_keep=opts.keep_checkpoint_max or None,
                                save_relative_paths=True)
        restore = _restorer(saver, latest)
        graph.finalize()
    # Only now that the model and checkpoints were checked: nothing written on bad input.
    write_training_config(opts, bert_config, dict(extra_config or {}, input_files=input_files))

    ckpt_prefix = os.path.join(opts.output_dir, "model.ckpt")
    with graph.as_default():
        writer = tf1.summary.FileWriter(opts.output_dir, graph=None if latest else graph)
    with tf1.Session(graph=graph, config=session_config(opts)) as sess:
        restore(sess)
        step = int(sess.run(global_step))
        last_saved = step if latest else None
        progress = Progress("steps", total=opts.num_train_steps - step, label="train",
                            interval=math.inf)
        logging.info("***** Running training from step %d to %d, batch size %d *****",
                     step, opts.num_train_steps, opts.train_batch_size)
        logged_at, logged_step = time.monotonic(), step
        while step < opts.num_train_steps:
            log_now = (step + 1) % opts.log_every_n_steps == 0 or \
                step + 1 == opts.num_train_steps
            fetches = {"train_op": spec.train_op, "loss": spec.loss}
            if log_now:
                fetches.update(spec.tensors)
            try:
                out = sess.run(fetches)
            except tf.errors.OpError as e:
                raise RuntimeError(f"training failed at step {step + 1} "
                                   f"({type(e).__name__}: {e.message.splitlines()[0]})") from None
            step += 1
            progress.update(1)
            if not np.isfinite(out["loss"]):
                where = f"model.ckpt-{last_saved}" if last_saved is not None else "none"
                raise NonFiniteLossError(
                    f"non-finite loss ({out['loss']}) at step {step}; stopped without saving; "
                    f"last good checkpoint in {opts.output_dir}: {where}")
            if step % opts.save_checkpoints_steps == 0 or step == opts.num_train_steps:
                saver.save(sess, ckpt_prefix, global_step=step)
                last_saved = step
            if log_now:
                lr = float(sess.run(learning_rate))
                now = time.monotonic()
                steps_per_s = (step - logged_step) / max(now - logged_at, 1e-9)
                logged_at, logged_step = now, step
                scalars = {"loss": out["loss"], "learning_rate": lr,
                           "masked_lm_accuracy": out["masked_lm_accuracy"],
                           "next_sentence_accuracy": out["next_sentence_accuracy"],
                           "masked_lm_loss": out["masked_lm_loss"],
                           "next_sentence_loss": out["next_sentence_loss"],
                           "global_step/sec": steps_per_s}
                writer.add_summary(_summary(scalars), step)
                writer.flush()
                print(f"step {step}/{opts.num_train_steps}: loss {out['loss']:.4f}, lr {lr:.4g}, "
                      f"{steps_per_s:.3f} steps/s, "
                      f"{steps_per_s * opts.train_batch_size:.2f} examples/s; {progress.line()}",
                      file=sys.stderr, flush=True)
    writer.close()
    return step


def evaluate(opts: Options, bert_config: modeling.BertConfig, input_files: list[str]) -> dict:
    """Google's evaluation: max_eval_steps batches of eval_batch_size, files in order.
    Writes output_dir/eval_results.txt (`key = value`, sorted keys) and returns the dict."""
    latest = tf1.train.latest_checkpoint(opts.output_dir)
    graph = tf.Graph()
    with graph.as_default():
        spec = _build_spec(opts, bert_config, input_files, latest, "eval")
        global_step = tf1.train.get_or_create_global_step()
        restore = _restorer(tf1.train.Saver(), latest)
        updates = [u for _, u in spec.eval_metrics.values()]
        values = {k: v for k, (v, _) in spec.eval_metrics.items()}
        graph.finalize()
    if latest is None:
        logging.info("No checkpoint in %s: evaluating the initial weights%s", opts.output_dir,
                     f" from {opts.init_checkpoint}" if opts.init_checkpoint else "")
    logging.info("***** Running evaluation: %d steps of batch size %d *****",
                 opts.max_eval_steps, opts.eval_batch_size)
    with tf1.Session(graph=graph, config=session_config(opts)) as sess:
        restore(sess)
        progress = Progress("steps", total=opts.max_eval_steps, label="eval")
        for _ in range(opts.max_eval_steps):
            sess.run(updates)
            progress.update(1)
        result = sess.run(values)
        result["global_step"] = sess.run(global_step)
    # Google wrote "%s = %s" % (key, str(value)) with numpy values (str(np.float32)).
    lines = ["%s = %s" % (key, str(result[key])) for key in sorted(result)]
    write_text_atomic(os.path.join(opts.output_dir, "eval_results.txt"),
                      "".join(line + "\n" for line in lines))
    logging.info("***** Eval results *****")
    for line in lines:
        logging.info("  %s", line)
    return result


def write_training_config(opts: Options, bert_config: modeling.BertConfig,
                          extra: dict) -> None:
    """output_dir/training_config.json: the effective options, bert_config, input files."""
    write_json_atomic(os.path.join(opts.output_dir, "training_config.json"), {
        "flags": dataclasses.asdict(opts) | extra,
        "bert_config": bert_config.to_dict(),
        "tensorflow_version": tf.__version__,
    })


def run(opts: Options, extra_config: dict | None = None) -> dict:
    """Validate, then train and/or evaluate. Returns {"global_step": ..., "eval": ...}."""
    bert_config, input_files = validate(opts)
    logging.info("%d input file(s) for %s", len(input_files), opts.input_file)
    out: dict = {}
    if opts.do_train:
        out["global_step"] = train(opts, bert_config, input_files, extra_config)
    if opts.do_eval:
        out["eval"] = evaluate(opts, bert_config, input_files)
    return out


def main(argv: list[str]) -> int:
    del argv
    opts = Options(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(Options)})
    if opts.use_xla and "--tf_xla_cpu_global_jit" not in os.environ.get("TF_XLA_FLAGS", ""):
        os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "")
                                      + " --tf_xla_cpu_global_jit").strip()
    if FLAGS.use_tpu:
        logging.warning("--use_tpu is ignored: this implementation has no TPU support")
    extra = {"do_lower_case": FLAGS.do_lower_case}
    try:
        run(opts, extra)
    except (ValueError, NonFiniteLossError, RuntimeError) as e:
        print(f"run_pretraining: error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


def cli() -> None:
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    cli()
