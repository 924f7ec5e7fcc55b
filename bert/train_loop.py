"""The training loop of bert.run_pretraining: graph, session, loops, checkpoints, logs.

Google's TPUEstimator ran `--iterations_per_loop` steps inside one session call; so does
this: a `tf.while_loop` over the input iterator. Checkpoints, log lines, TensorBoard
scalars and the non-finite-loss check happen at loop boundaries; a loop never crosses a
checkpoint or log step, so results do not depend on the loop length. The first call runs
one step (its time sizes the later loops, so that on a slow device a loop lasts at most
~30 s and progress appears at least once a minute).

Replicas (bert.distribute) are built into the same step: one process with several
devices, and/or several worker processes. Only the chief (worker 0) writes checkpoints,
summaries and training_config.json; every worker restores the newest checkpoint.
"""
from __future__ import annotations

import os
import re
import sys
import time
from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf
from absl import logging

from bert import checkpoints, distribute, modeling, optimization
from bert.pretraining_data import input_fn_builder
from bert.pretraining_model import replica_forward
from utils.cli import UserError
from utils.progress import Progress

tf1 = tf.compat.v1
METRICS = ("loss", "masked_lm_loss", "next_sentence_loss", "masked_lm_accuracy",
           "next_sentence_accuracy")
LOOP_SECONDS = 30.0  # longest session call we aim for (progress at least once a minute)


class TrainingError(UserError):
    """Training stopped on an error TensorFlow reported (its useful line, and a hint)."""


class NonFiniteLossError(UserError):
    """The loss became NaN/Inf: stopped without saving (last good checkpoint named)."""


# ---------------------------------------------------------------------------- graph


def _build_step(opts, bert_config: modeling.BertConfig, iterator, layout: distribute.Layout,
                coll: distribute.Collectives, init_checkpoint: str | None) -> tuple:
    """One training step over all replicas: (train_op, {metric: global scalar})."""
    features = iterator.get_next()
    slices = distribute.split_for_replicas(features, layout.num_local)
    replicas = []
    for r, part in enumerate(slices):
        with tf.device(layout.replica_device(r)), \
                tf1.variable_scope(tf1.get_variable_scope(), reuse=True if r else None):
            replicas.append(replica_forward(bert_config, part, is_training=True,
                                            compute_type=opts.compute_type))
    tvars = tf1.trainable_variables()
    if init_checkpoint:
        checkpoints.init_from_checkpoint(tvars, init_checkpoint)
    with tf.device(layout.replica_device(0)):  # where the variables live
        return _sum_and_apply(opts, replicas, tvars, layout, coll)


def _sum_and_apply(opts, replicas: list[dict], tvars: list, layout: distribute.Layout,
                   coll: distribute.Collectives) -> tuple:
    """Global normalisers, per-replica gradients, their sum over all replicas, the update."""
    local = {k: tf.add_n([rep[k] for rep in replicas]) for k in replicas[0]}
    # The global normalisers first (they depend only on the input).
    denominator = coll.all_sum(local["mlm_weight"]) + 1e-5
    batch = float(opts.train_batch_size)
    scaler = optimization.DynamicLossScale() if opts.compute_type == tf.float16 else None
    per_replica = []
    for r, rep in enumerate(replicas):
        with tf.device(layout.replica_device(r)):
            # FAITHFUL: Google's losses over the whole batch, sum(w * l) / (sum(w) + 1e-5)
            # and mean(nsp); each replica's share uses the global normalisers, so the sum
            # of the replicas' gradients is the gradient of exactly that loss.
            loss = rep["mlm_numerator"] / denominator + rep["nsp_sum"] / batch
            if scaler is not None:
                loss = loss * scaler.scale
            per_replica.append([distribute.dense(g) for g in
                                tf1.gradients(loss, tvars, colocate_gradients_with_ops=True)])
    grads = [g_list[0] if len(g_list) == 1 else tf.add_n(g_list)
             for g_list in zip(*per_replica)]
    stats = tf.stack([local["mlm_numerator"], local["nsp_sum"], local["mlm_correct"],
                      local["nsp_correct"]])
    *grads, stats = coll.all_sum_packed(grads + [stats])
    train_op = optimization.apply_gradients_step(
        grads, tvars, opts.learning_rate, opts.num_train_steps, opts.num_warmup_steps,
        scaler=scaler)
    mlm_loss, nsp_loss = stats[0] / denominator, stats[1] / batch
    metrics = {"loss": mlm_loss + nsp_loss, "masked_lm_loss": mlm_loss,
               "next_sentence_loss": nsp_loss,
               "masked_lm_accuracy": stats[2] / tf.maximum(denominator - 1e-5, 1e-12),
               "next_sentence_accuracy": stats[3] / batch}
    return train_op, metrics


class TrainGraph(NamedTuple):
    graph: tf.Graph
    step_op: tf.Operation            # one step
    step_metrics: dict
    loop_steps: tf.Tensor            # placeholder: steps in one loop call
    loop_outputs: dict | None        # after a loop: last step's metrics, "finite"
    global_step: tf.Variable
    learning_rate: tf.Tensor
    saver: tf1.train.Saver
    restore: Callable
    sync: tf.Operation               # copies the chief's weights to every worker


def build_graph(opts, bert_config, input_files: list[str], latest: str | None,
                start_step: int, layout: distribute.Layout) -> TrainGraph:
    graph = tf.Graph()
    coll = distribute.Collectives(layout)
    per_process = opts.train_batch_size // layout.num_workers
    with graph.as_default(), tf.device(layout.host_device):
        tf1.set_random_seed(opts.seed)
        # DEVIATION: resume skips the batches already trained (the Estimator restarted input)
        # so that the data order is the one an uninterrupted run would have had.
        rows = None if not layout.multi_worker else (layout.task_index * per_process,
                                                     per_process)
        dataset = input_fn_builder(input_files, opts.max_seq_length,
                                   opts.max_predictions_per_seq, is_training=True,
                                   seed=opts.seed, skip_batches=start_step, rows=rows)(
            {"batch_size": opts.train_batch_size})
        iterator = tf1.data.make_one_shot_iterator(dataset)
        init = None if latest else opts.init_checkpoint  # FAITHFUL: a checkpoint in output_dir wins
        step_op, step_metrics = _build_step(opts, bert_config, iterator, layout, coll, init)
        loop_steps = tf1.placeholder(tf.int32, [], name="loop_steps")
        loop_outputs = None  # never used with one step per call: not built (faster start)
        if opts.iterations_per_loop > 1 and opts.num_train_steps - start_step > 1:
            loop_outputs = _build_loop(opts, bert_config, iterator, layout, coll, loop_steps)
        global_step = tf1.train.get_global_step()
        learning_rate = optimization.learning_rate_schedule(
            global_step, opts.learning_rate, opts.num_train_steps, opts.num_warmup_steps)
        saver = tf1.train.Saver(max_to_keep=opts.keep_checkpoint_max or None,
                                save_relative_paths=True)
        restore = checkpoints.restorer(saver, latest)
        with tf.device(layout.replica_device(0)):  # beside the variables (NCCL on GPU)
            sync = coll.broadcast_from_chief(tf1.global_variables())
        graph.finalize()
    return TrainGraph(graph, step_op, step_metrics, loop_steps, loop_outputs, global_step,
                      learning_rate, saver, restore, sync)


def _build_loop(opts, bert_config, iterator, layout, coll, loop_steps) -> dict:
    """`loop_steps` steps in one session call (stops early on a non-finite loss). The
    variables exist already (the one-step op made them): the loop body only reuses them."""
    def cond(i, finite, *_):
        return tf.logical_and(i < loop_steps, finite)

    def body(i, finite, *_):
        with tf1.variable_scope(tf1.get_variable_scope(), reuse=True):
            train_op, metrics = _build_step(opts, bert_config, iterator, layout, coll, None)
        with tf.control_dependencies([train_op]):
            values = [tf.identity(metrics[k]) for k in METRICS]
            return [i + 1, tf.logical_and(finite, tf.math.is_finite(values[0]))] + values

    start = [tf.constant(0), tf.constant(True)] + [tf.constant(0.0) for _ in METRICS]
    out = tf1.while_loop(cond, body, start, parallel_iterations=1)
    return dict(zip(("steps", "finite") + METRICS, out))


# ---------------------------------------------------------------------------- errors


_NOISE = re.compile(r"^(Graph execution error:|Detected at node|\[\[|Node:|Defined at|"
                    r"File \"|Stack trace|During handling|Traceback|From /job:|"
                    r"Additional GRPC error information|\s*$)")


def useful_error_line(message: str) -> str:
    """The line of a TF error message that says what went wrong (not "Graph execution
    error:", node names or stack traces)."""
    for line in message.splitlines():
        line = line.strip()
        if line and not _NOISE.match(line):
            return re.sub(r"\s*\[\[.*$", "", line)
    return message.strip().splitlines()[0] if message.strip() else "no message"


def likely_cause(line: str, vocab_size: int) -> str:
    m = re.search(r"indices\[[\d,]+\] = (\d+) is not in \[0, (\d+)\)", line)
    if m and int(m.group(2)) == vocab_size:
        return (f"; likely cause: token id {m.group(1)} >= vocab_size {vocab_size}: the records "
                "were made with a larger vocabulary than bert_config_file's vocab_size")
    lower = line.lower()
    if any(s in lower for s in ("deadline", "timed out", "failed to connect", "socket closed",
                                "connection reset")):
        return "; likely cause: another worker stopped or is unreachable (rerun all workers)"
    return ""


def run_reporting_errors(sess: tf1.Session, fetches, feed, first: int, last: int,
                         vocab_size: int):
    try:
        return sess.run(fetches, feed)
    except tf.errors.OpError as e:
        line = useful_error_line(e.message)
        where = f"step {first}" if first == last else f"steps {first}-{last}"
        raise TrainingError(f"training failed at {where} ({type(e).__name__}: {line})"
                            + likely_cause(line, vocab_size)) from None


# ---------------------------------------------------------------------------- loop


# DEVIATION: TPUEstimator's loops had a fixed length; here they also end at log steps and
# after ~30 s. Loop boundaries change neither the math nor the data order.
def _next_chunk(step: int, opts, step_seconds: float | None, layout) -> int:
    """Steps of the next session call: up to iterations_per_loop, never across a
    checkpoint or log step or the end; one step first; bounded by time on one worker.
    (Workers must all run the same sequence of calls, so the time bound is single-process.)"""
    if step_seconds is None or opts.iterations_per_loop == 1:
        return 1
    limit = opts.num_train_steps - step
    for every in (opts.save_checkpoints_steps, opts.log_every_n_steps):
        limit = min(limit, every - step % every)
    limit = min(limit, max(1, opts.iterations_per_loop))
    if not layout.multi_worker and step_seconds > 0:
        limit = min(limit, max(1, int(LOOP_SECONDS / step_seconds)))
    return max(1, limit)


def _summary(tag_values: dict) -> tf1.Summary:
    return tf1.Summary(value=[tf1.Summary.Value(tag=k, simple_value=float(v))
                              for k, v in tag_values.items()])


def train_session(opts, bert_config, tg: TrainGraph, layout: distribute.Layout,
                  latest: str | None, start_step: int, config: tf1.ConfigProto,
                  target: str = "") -> int:
    """Run the loop from the restored state to num_train_steps; returns the final step."""
    chief = layout.is_chief
    ckpt_prefix = os.path.join(opts.output_dir, "model.ckpt")
    writer = None
    if chief:
        with tg.graph.as_default():
            writer = tf1.summary.FileWriter(opts.output_dir,
                                            graph=None if latest else tg.graph)
    with tf1.Session(target, graph=tg.graph, config=config) as sess:
        tg.restore(sess)
        sess.run(tg.sync)
        step = int(sess.run(tg.global_step))
        if step != start_step:
            raise TrainingError(f"worker {layout.task_index} resumed at step {start_step} but "
                                f"the chief at step {step}: every worker must see the same "
                                "--output_dir (a shared folder)")
        last_saved = step if latest else None
        progress = Progress("steps", total=opts.num_train_steps - step, label="train",
                            interval=60.0)
        logging.info("***** Running training from step %d to %d, global batch %d over %d "
                     "replica(s) *****", step, opts.num_train_steps, opts.train_batch_size,
                     layout.num_replicas)
        logged_at, logged_step, step_seconds = time.monotonic(), step, None
        while step < opts.num_train_steps:
            n = _next_chunk(step, opts, step_seconds, layout)
            began = time.monotonic()
            if n == 1:
                out = run_reporting_errors(sess, {"op": tg.step_op, **tg.step_metrics}, None,
                                           step + 1, step + 1, bert_config.vocab_size)
                out.update(steps=1, finite=bool(np.isfinite(out["loss"])))
            else:
                out = run_reporting_errors(sess, tg.loop_outputs, {tg.loop_steps: n},
                                           step + 1, step + n, bert_config.vocab_size)
            step_seconds = (time.monotonic() - began) / max(1, int(out["steps"]))
            step += int(out["steps"])
            progress.update(int(out["steps"]))
            if not out["finite"] or not np.isfinite(out["loss"]):
                where = f"model.ckpt-{last_saved}" if last_saved is not None else "none"
                raise NonFiniteLossError(
                    f"non-finite loss ({out['loss']}) at step {step}; stopped without saving; "
                    f"last good checkpoint in {opts.output_dir}: {where}")
            if chief and (step % opts.save_checkpoints_steps == 0
                          or step == opts.num_train_steps):
                save_checkpoint(tg.saver, sess, ckpt_prefix, step)
                last_saved = step
            if step % opts.log_every_n_steps == 0 or step == opts.num_train_steps:
                now = time.monotonic()
                steps_per_s = (step - logged_step) / max(now - logged_at, 1e-9)
                logged_at, logged_step = now, step
                _log_step(opts, sess, tg, writer, out, step, steps_per_s, progress)
        if layout.multi_worker:
            logging.info("worker %d weights digest %s", layout.task_index,
                         distribute.weights_digest(sess, tf1.global_variables()))
    if writer is not None:
        writer.close()
    return step


def save_checkpoint(saver: tf1.train.Saver, sess: tf1.Session, prefix: str, step: int) -> None:
    """Saver.save; a full or read-only disk becomes one line naming the folder."""
    try:
        saver.save(sess, prefix, global_step=step)
    except (tf.errors.OpError, OSError) as e:
        reason = e.message if isinstance(e, tf.errors.OpError) else (e.strerror or str(e))
        raise TrainingError(f"{os.path.dirname(prefix)}: cannot write checkpoint "
                            f"model.ckpt-{step} ({useful_error_line(reason)})") from None


def _log_step(opts, sess, tg: TrainGraph, writer, out: dict, step: int, steps_per_s: float,
              progress: Progress) -> None:
    lr = float(sess.run(tg.learning_rate))
    if writer is not None:
        scalars = {k: out[k] for k in METRICS}
        scalars.update({"learning_rate": lr, "global_step/sec": steps_per_s})
        writer.add_summary(_summary(scalars), step)
        writer.flush()
    print(f"step {step}/{opts.num_train_steps}: loss {out['loss']:.4f}, lr {lr:.4g}, "
          f"{steps_per_s:.3f} steps/s, {steps_per_s * opts.train_batch_size:.2f} examples/s; "
          f"{progress.line()}", file=sys.stderr, flush=True)


def session_config(opts, layout: distribute.Layout | None = None) -> tf1.ConfigProto:
    config = tf1.ConfigProto(intra_op_parallelism_threads=opts.num_intra_threads,
                             inter_op_parallelism_threads=opts.num_inter_threads,
                             allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    if opts.use_xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    if layout is not None:
        distribute.configure_session(config, layout)
    return config


def train(opts, bert_config, input_files: list[str], layout: distribute.Layout,
          write_config: Callable[[], None]) -> int:
    """Train until global_step == num_train_steps, resuming from output_dir if it holds a
    checkpoint. Returns the final global step."""
    latest = checkpoints.latest_good_checkpoint(opts.output_dir)
    start_step = checkpoints.global_step_of(latest) if latest else 0
    if latest:
        logging.info("Resuming from %s (global_step %d); skipping the %d batches already "
                     "trained on", latest, start_step, start_step)
    if start_step >= opts.num_train_steps:
        logging.info("Already trained to step %d >= num_train_steps %d; nothing to do",
                     start_step, opts.num_train_steps)
        return start_step
    if opts.train_batch_size % layout.num_replicas:
        raise distribute.DistributeError(
            f"--train_batch_size={opts.train_batch_size} (the global batch) must be a "
            f"multiple of the {layout.num_replicas} replicas")
    tg = build_graph(opts, bert_config, input_files, latest, start_step, layout)
    config = session_config(opts, layout)
    target = distribute.start_server(layout, config) if layout.multi_worker else ""
    if layout.is_chief:
        # Only now that the model and checkpoints were checked: nothing written on bad input.
        write_config()
    return train_session(opts, bert_config, tg, layout, latest, start_step, config, target)

