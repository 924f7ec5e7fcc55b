"""Masked LM + next sentence pretraining (Google BERT `run_pretraining.py`), TF 2.21.

`tf.estimator` is gone, so training is a plain `tf.compat.v1.Session` loop with a
`Saver` (bert.train_loop); everything a user sees of the original is kept: the flags
(Google's run_pretraining.py flags and defaults; TPU flags accepted and ignored), the heads and losses
(bert.pretraining_model), the optimizer (bert.optimization), checkpoints
`output_dir/model.ckpt-STEP` + `checkpoint` loadable by Google's code, `eval_results.txt`,
and up to `--iterations_per_loop` steps per session call. Added: automatic resume (newest
readable checkpoint in output_dir: weights, slots, step, and the input position),
`--keep_checkpoint_max`, progress lines, TensorBoard scalars, `training_config.json`,
`--use_xla`, `--use_amp`, several devices and machines (`--num_devices`,
`--worker_hosts`/`--task_index` or TF_CONFIG; bert.distribute), checks of the inputs
before any work, and a clean stop on a non-finite loss.

Run: python -m bert.run_pretraining --bert_config_file=... --input_file=...
         --output_dir=... --do_train [--init_checkpoint=...] [--do_eval]
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    from utils.tf_quiet import import_tensorflow
    import_tensorflow()
if __name__ == "__main__" and any(a.split("=")[0] == "--use_xla" and
                                  a.split("=", 1)[-1].lower() not in ("false", "0")
                                  for a in sys.argv[1:]):
    # XLA auto-clustering on CPU only happens with this flag, read when TF starts.
    os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "")
                                  + " --tf_xla_cpu_global_jit").strip()

import dataclasses  # noqa: E402
import json  # noqa: E402
import typing  # noqa: E402
from typing import Any  # noqa: E402

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from bert import checkpoints, distribute, modeling  # noqa: E402
from bert.checkpoint_map import CheckpointError  # noqa: E402
from bert.pretraining_data import check_record_shapes, input_fn_builder  # noqa: E402
# The heads and model_fn, importable from here as from Google's module.
from bert.pretraining_model import (PretrainingSpec, gather_indexes,  # noqa: E402,F401
                                    get_masked_lm_output, get_next_sentence_output,
                                    model_fn_builder)
from bert.train_loop import (NonFiniteLossError, TrainingError,  # noqa: E402,F401
                             session_config, train as train_loop)
from utils.atomic import write_text_atomic  # noqa: E402
from utils.cli import UsageError, UserError, absl_main, os_error_message  # noqa: E402
from utils.files import expand_input_files  # noqa: E402
from utils.progress import Progress  # noqa: E402

tf1 = tf.compat.v1
FLAGS = flags.FLAGS
AMP_DTYPES = {"float16": tf.float16, "bfloat16": tf.bfloat16}
__all__ = ["CheckpointError", "NonFiniteLossError", "TrainingError", "PretrainingError",
           "Options", "IgnoredFlags", "define_flags", "options_from_flags", "run", "validate", "train", "evaluate",
           "gather_indexes", "get_masked_lm_output", "get_next_sentence_output",
           "model_fn_builder", "session_config"]


# ---------------------------------------------------------------------------- options
#
# One table: each Options field is a flag, with its help (and, for an enum, its choices)
# in the field's metadata; define_flags() and options_from_flags() are generated from it.


def _flag(default: Any, help: str, **kind: Any) -> Any:
    """An Options field that is also a flag: its default is the flag's, `help` its --help
    line; `choices=[...]` makes it an enum flag."""
    return dataclasses.field(default=default, metadata={"help": help, **kind})


def _required(help: str) -> Any:
    """A field a run cannot do without: no dataclass default, flag default None."""
    return dataclasses.field(metadata={"help": help})


@dataclasses.dataclass
class Options:
    """Everything a run needs (the CLI fills it from flags; tests and the bench directly)."""
    # Google's flags, names, defaults and help.
    bert_config_file: str = _required("The config json file of the pre-trained BERT model.")
    input_file: str = _required("Input TF example files (can be a glob or comma separated).")
    output_dir: str = _required("The output directory where checkpoints will be written.")
    init_checkpoint: str | None = _flag(
        None, "Initial checkpoint (usually from a pre-trained BERT model).")
    max_seq_length: int = _flag(128, "Maximum sequence length; must match the records.")
    max_predictions_per_seq: int = _flag(
        20, "Maximum masked LM predictions per sequence; must match the records.")
    do_train: bool = _flag(False, "Whether to run training.")
    do_eval: bool = _flag(False, "Whether to run eval on the dev set.")
    train_batch_size: int = _flag(32, "Total batch size for training.")
    eval_batch_size: int = _flag(8, "Total batch size for eval.")
    learning_rate: float = _flag(5e-5, "The initial learning rate for Adam.")
    num_train_steps: int = _flag(100000, "Number of training steps.")
    num_warmup_steps: int = _flag(10000, "Number of warmup steps.")
    save_checkpoints_steps: int = _flag(1000, "How often to save the model checkpoint.")
    max_eval_steps: int = _flag(100, "Maximum number of eval steps.")
    iterations_per_loop: int = _flag(
        1000, "Training steps per session call (a tf.while_loop, as TPUEstimator ran them); "
        "never crosses a checkpoint or log step, and kept to ~30 s per call on one worker so "
        "that progress shows at least once a minute.")
    # This project's additions.
    keep_checkpoint_max: int = _flag(5, "How many recent checkpoints to keep (0 = all).")
    log_every_n_steps: int = _flag(100, "Progress line and TensorBoard scalars every N steps.")
    seed: int = _flag(12345, "Graph-level random seed (data order, dropout, fresh initialisers).")
    use_xla: bool = _flag(False, "XLA auto-clustering (JIT); same checkpoints.")
    use_amp: bool = _flag(False, "Mixed precision: compute in --amp_dtype, float32 master weights.")
    amp_dtype: str = _flag("bfloat16", "Compute type with --use_amp (float16 adds dynamic loss "
                           "scaling).", choices=["float16", "bfloat16"])
    num_intra_threads: int = _flag(0, "TF intra-op threads (0 = TF's choice).")
    num_inter_threads: int = _flag(0, "TF inter-op threads (0 = TF's choice).")
    num_devices: int = _flag(
        1, "Replicas in this process: that many GPUs, or (no GPU) that many logical CPU "
        "devices. --train_batch_size stays the global batch.")
    worker_hosts: str = _flag(
        "", "HOST:PORT of every worker process, comma separated (worker 0 is the chief); "
        "empty: TF_CONFIG if set, else one process. TF's gRPC server is unauthenticated: "
        "isolated networks only.")
    task_index: int = _flag(0, "This process's index in --worker_hosts.")
    collective_timeout_s: float = _flag(
        1800.0, "Seconds a worker waits for the others in one all-reduce before stopping with "
        "an error.")

    @property
    def compute_type(self) -> tf.DType:
        return AMP_DTYPES[self.amp_dtype] if self.use_amp else tf.float32


@dataclasses.dataclass
class IgnoredFlags:
    """Flags a Google command line may pass that change nothing in a run: the TPU flags
    (no TPU support) and do_lower_case (only recorded in training_config.json)."""
    use_tpu: bool = _flag(False, "Accepted for compatibility; ignored (no TPU support).")
    tpu_name: str | None = _flag(None, "Ignored.")
    tpu_zone: str | None = _flag(None, "Ignored.")
    gcp_project: str | None = _flag(None, "Ignored.")
    master: str | None = _flag(None, "Ignored.")
    num_tpu_cores: int = _flag(8, "Ignored.")
    do_lower_case: bool | None = _flag(None, "Informational: recorded in training_config.json.")


# The absl definer of each field type (Optional[T] is T's).
_DEFINERS = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float,
             bool: flags.DEFINE_bool}


def _flag_type(annotation: Any) -> type:
    """`int`, or T of `T | None`."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def flag_default(field: dataclasses.Field) -> Any:
    """The flag's default: the field's, or None for a required field."""
    return None if field.default is dataclasses.MISSING else field.default


def define_flags(fv: flags.FlagValues = FLAGS) -> None:
    """Google's flags plus this project's, one per field of Options and IgnoredFlags.
    Defined on demand, not at import, so that other modules with the same flag names
    (create_pretraining_data) can share a process."""
    for table in (Options, IgnoredFlags):
        types = typing.get_type_hints(table)
        for field in dataclasses.fields(table):
            help_text, default = field.metadata["help"], flag_default(field)
            if "choices" in field.metadata:
                flags.DEFINE_enum(field.name, default, field.metadata["choices"], help_text,
                                  flag_values=fv)
            else:
                _DEFINERS[_flag_type(types[field.name])](field.name, default, help_text,
                                                         flag_values=fv)


def options_from_flags(fv: flags.FlagValues = FLAGS) -> Options:
    """The Options of parsed flags."""
    return Options(**{f.name: fv[f.name].value for f in dataclasses.fields(Options)})


# ---------------------------------------------------------------------------- training


class PretrainingError(UserError):
    """A setting or input run_pretraining cannot use (named in the one-line message)."""


def validate(opts: Options) -> tuple[modeling.BertConfig, list[str], distribute.Layout]:
    """All checks that can fail before any work (UserError, one line naming the problem)."""
    if not opts.do_train and not opts.do_eval:
        raise PretrainingError("At least one of `do_train` or `do_eval` must be True.")
    for name in ("bert_config_file", "input_file", "output_dir"):
        if not getattr(opts, name):
            raise PretrainingError(f"--{name} is required")
    bert_config = modeling.BertConfig.from_json_file(opts.bert_config_file)
    if opts.max_seq_length > bert_config.max_position_embeddings:
        raise PretrainingError(
            f"--max_seq_length={opts.max_seq_length} is larger than max_position_embeddings="
            f"{bert_config.max_position_embeddings} in {opts.bert_config_file}")
    for name in ("train_batch_size", "eval_batch_size", "num_train_steps",
                 "save_checkpoints_steps", "log_every_n_steps", "max_eval_steps",
                 "iterations_per_loop"):
        if getattr(opts, name) <= 0:
            raise PretrainingError(f"--{name} must be positive (got {getattr(opts, name)})")
    if opts.num_warmup_steps < 0:
        raise PretrainingError(f"--num_warmup_steps must be >= 0 (got {opts.num_warmup_steps})")
    input_files = expand_input_files(opts.input_file)
    check_record_shapes(input_files, opts.max_seq_length, opts.max_predictions_per_seq,
                        vocab_size=bert_config.vocab_size)
    if opts.init_checkpoint:
        opts.init_checkpoint = checkpoints.resolve_init_checkpoint(opts.init_checkpoint)
    layout = distribute.make_layout(opts.num_devices, opts.worker_hosts, opts.task_index,
                                    opts.collective_timeout_s)
    if opts.do_train and opts.train_batch_size % layout.num_replicas:
        raise PretrainingError(f"--train_batch_size={opts.train_batch_size} (the global batch) "
                               f"must be a multiple of the {layout.num_replicas} replicas")
    checkpoints.check_writable(opts.output_dir)
    return bert_config, input_files, layout


def _build_eval_spec(opts: Options, bert_config: modeling.BertConfig, input_files: list[str],
                     latest: str | None) -> PretrainingSpec:
    """In the current graph: the eval input pipeline and model_fn, as the Estimator wired
    input_fn to model_fn. `init_checkpoint` only applies when output_dir holds no checkpoint."""
    tf1.set_random_seed(opts.seed)
    dataset = input_fn_builder(input_files, opts.max_seq_length, opts.max_predictions_per_seq,
                               is_training=False)({"batch_size": opts.eval_batch_size})
    features = tf1.data.make_one_shot_iterator(dataset).get_next()
    model_fn = model_fn_builder(
        bert_config, None if latest else opts.init_checkpoint, opts.learning_rate,
        opts.num_train_steps, opts.num_warmup_steps, compute_type=opts.compute_type)
    return model_fn(features, None, "eval", {"batch_size": opts.eval_batch_size})


def train(opts: Options, bert_config: modeling.BertConfig, input_files: list[str],
          extra_config: dict | None = None, layout: distribute.Layout | None = None) -> int:
    """Train until global_step == num_train_steps, resuming from output_dir if it holds a
    checkpoint (raising --num_train_steps continues a finished run). Returns the final step."""
    layout = layout or distribute.Layout()
    _log_new_total(opts)
    return train_loop(opts, bert_config, input_files, layout, lambda: write_training_config(
        opts, bert_config, dict(extra_config or {}, input_files=input_files)))


def _log_new_total(opts: Options) -> None:
    """Say so when a run is continued with another --num_train_steps than it recorded."""
    path = os.path.join(opts.output_dir, "training_config.json")
    try:
        with open(path, encoding="utf-8") as f:
            before = json.load(f).get("flags", {}).get("num_train_steps")
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(before, int) and before != opts.num_train_steps:
        logging.warning("--num_train_steps=%d (was %d in %s): training continues from the last "
                        "checkpoint, and the learning-rate schedule is the one of the new total "
                        "(as Google's code computes it on restart)", opts.num_train_steps,
                        before, path)


def evaluate(opts: Options, bert_config: modeling.BertConfig, input_files: list[str]) -> dict:
    """Google's evaluation: max_eval_steps batches of eval_batch_size, files in order.
    Writes output_dir/eval_results.txt (`key = value`, sorted keys) and returns the dict."""
    latest = checkpoints.latest_good_checkpoint(opts.output_dir)
    graph = tf.Graph()
    with graph.as_default():
        spec = _build_eval_spec(opts, bert_config, input_files, latest)
        global_step = tf1.train.get_or_create_global_step()
        restore = checkpoints.restorer(tf1.train.Saver(), latest)
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
        progress = Progress("steps", total=opts.max_eval_steps, label="eval", interval=60.0)
        for _ in range(opts.max_eval_steps):
            sess.run(updates)
            progress.update(1)
        result = sess.run(values)
        result["global_step"] = sess.run(global_step)
    # Google wrote "%s = %s" % (key, str(value)) with numpy values (str(np.float32)).
    lines = ["%s = %s" % (key, str(result[key])) for key in sorted(result)]
    _write_output(os.path.join(opts.output_dir, "eval_results.txt"),
                  "".join(line + "\n" for line in lines))
    logging.info("***** Eval results *****")
    for line in lines:
        logging.info("  %s", line)
    return result


def _write_output(path: str, text: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as e:
        raise PretrainingError(os_error_message(e, f"cannot write {os.path.basename(path)}")
                               ) from None


def write_training_config(opts: Options, bert_config: modeling.BertConfig,
                          extra: dict) -> None:
    """output_dir/training_config.json: the effective options, bert_config, input files."""
    _write_output(os.path.join(opts.output_dir, "training_config.json"), json.dumps({
        "flags": dataclasses.asdict(opts) | extra,
        "bert_config": bert_config.to_dict(),
        "tensorflow_version": tf.__version__,
    }, indent=2, ensure_ascii=False) + "\n")


def run(opts: Options, extra_config: dict | None = None) -> dict:
    """Validate, then train and/or evaluate. Returns {"global_step": ..., "eval": ...}.
    With several workers only the chief (worker 0) evaluates."""
    bert_config, input_files, layout = validate(opts)
    logging.info("%d input file(s) for %s", len(input_files), opts.input_file)
    out: dict = {}
    if opts.do_train:
        out["global_step"] = train(opts, bert_config, input_files, extra_config, layout)
    if opts.do_eval and layout.is_chief:
        out["eval"] = evaluate(opts, bert_config, input_files)
    elif opts.do_eval:
        logging.info("--do_eval: worker %d leaves the evaluation to the chief (worker 0)",
                     layout.task_index)
    return out


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    opts = options_from_flags()
    if opts.use_xla and "--tf_xla_cpu_global_jit" not in os.environ.get("TF_XLA_FLAGS", ""):
        os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "")
                                      + " --tf_xla_cpu_global_jit").strip()
    if FLAGS.use_tpu:
        logging.warning("--use_tpu is ignored: this implementation has no TPU support")
    run(opts, {"do_lower_case": FLAGS.do_lower_case})
    return 0


def cli() -> None:
    define_flags()
    # absl exits 1 after --help; a help request is not an error.
    asked = {"--help", "-h", "-?", "--helpshort", "--helpfull"} & set(sys.argv[1:])
    if asked:
        app.usage(shorthelp=asked != {"--helpfull"}, writeto_stdout=True)
        sys.exit(0)
    app.run(absl_main("run_pretraining", main))


if __name__ == "__main__":
    cli()
