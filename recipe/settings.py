"""The recipe's settings table: every setting of a run, once (SETTINGS), with the
published recipe's value, the values its presets give it (the demo, --corpus discharge,
--init scratch and the model sizes), the stage flag it becomes, and what a change to it
means (runtime-only, extendable, redoes a step). The command-line parser, the preset
values, the --help defaults and each step's stage flags are generated from it, so a new
hyperparameter is one new row here.

recipe.config turns a parsed command line into a run's effective configuration with
this table; recipe.steps passes `stage_flags` to each stage CLI.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

STEP_NAMES = ("notes", "sections", "vocab", "tfrecords", "pretrain", "export", "compare",
              "evaluate", "summary")


def _bool(s: str) -> bool:
    """An option's true/false (also 1/0, yes/no)."""
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


# ----------------------------------------------------------------------------- the table
#
# Every setting of a run, once: its option, type, help, the published recipe's value
# (`default`), the values presets give it, the stage flag it becomes, and whether it is
# runtime-only, extendable or recorded by a step's marker. The parser, the effective
# configuration, the --help defaults and each step's argv are all generated from it.
#
# Presets are layers applied over the defaults, in order: a demo run is "demo" then
# "tiny"; a --notes run is its --corpus ("discharge") then, with --init scratch,
# "scratch" then its --model_size ("tiny", "small", "base").

MODEL_SIZES = ("tiny", "small", "base")  # preset layers of --model_size
CORPUS_PRESETS = ("discharge",)  # --corpus values with presets of their own ("all" is the default)
DEMO_VOCAB_SIZE = 4000
VOCAB_SIZE_FROM_NOTES = 30000  # --init scratch without --vocab: a BERT-sized WordPiece vocab

# Where a setting applies: "demo"; "scratch", --notes with --init scratch; "checkpoint",
# --notes with --init DIR. It may be given only there and (paths aside: always recorded,
# None where unused) is recorded in config.json only there.
ALL_MODES = frozenset({"demo", "scratch", "checkpoint"})
FROM_SCRATCH = frozenset({"demo", "scratch"})  # a model trained from random weights
DEMO_ONLY = frozenset({"demo"})

# Groups of the --help output.
MAIN, OVERRIDES, DISTRIBUTED, EVALUATION = "main", "overrides", "distributed", "evaluation"

# The stage CLIs the steps run (step: stage).
SYNTHETIC_NOTES = "data_prep.synthetic_notes"        # notes
SECTION_SPLIT = "section_split"                      # sections
BUILD_VOCAB = "bert.build_vocab"                     # vocab
CREATE_PRETRAINING_DATA = "bert.create_pretraining_data"  # tfrecords
RUN_PRETRAINING = "bert.run_pretraining"             # pretrain
CONVERT_TO_HUGGINGFACE = "bert.convert_to_huggingface"    # export
DOWNSTREAM_RUN = "downstream_tasks.run"              # evaluate


@dataclass(frozen=True)
class StageFlag:
    """A setting passed to a stage CLI as `--flag=value` (`--flag` alone for an argparse
    switch). `when`: "always"; "set", only when the value is not None; "true", only when
    it is truthy. `requires`: passed only when that other setting is true."""
    stage: str
    flag: str = ""  # default: the setting's name
    when: Literal["always", "set", "true"] = "always"
    switch: bool = False
    requires: str | None = None


@dataclass(frozen=True)
class Setting:
    """One setting of a run (see the table below)."""
    name: str
    type: Callable[[str], Any]
    help: str
    default: Any = None  # the published recipe's value; None: not set
    presets: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # preset layer: value
    group: str = OVERRIDES
    modes: frozenset[str] = ALL_MODES
    stages: tuple[StageFlag, ...] = ()
    runtime_only: bool = False  # changes no output: left out of the run folder's check
    extendable: bool = False  # a finished run may change it (the runner decides what is redone)
    redoes: tuple[str, ...] = ()  # steps whose marker records it: a change redoes them
    choices: tuple[str, ...] | None = None
    path: bool = False  # a file or folder: resolved against the current directory, checked in code
    show_default: bool = True  # --help appends the preset values (overrides only)


def _to(stage: str, flag: str = "", **how: Any) -> tuple[StageFlag, ...]:
    """The setting goes to one stage, as `--flag` (default: its own name)."""
    return (StageFlag(stage, flag, **how),)


_TRAIN = _to(RUN_PRETRAINING)
_TFRECORDS_AND_TRAIN = _to(CREATE_PRETRAINING_DATA) + _TRAIN
_TEXT_AND_TFRECORDS_IF_SET = (StageFlag(SECTION_SPLIT, when="set"),
                              StageFlag(CREATE_PRETRAINING_DATA, when="set"))


SETTINGS: tuple[Setting, ...] = (
    # --- what to train on and from
    Setting("notes", str, "NOTEEVENTS.csv(.gz) (MIMIC-III) or discharge/radiology.csv.gz (MIMIC-IV)",
            group=MAIN, path=True),
    Setting("init", str, "folder of the checkpoint to continue from (BioBERT v1.0 or BERT-Base cased), "
                         "or 'scratch' to train from random weights", group=MAIN, path=True),
    Setting("vocab", str, "with --init scratch: the WordPiece vocab.txt to use (e.g. BERT-Base cased's); "
                          "default: a vocab built from the notes", group=MAIN, modes=FROM_SCRATCH, path=True),
    Setting("model_size", str, "with --init scratch: tiny (the demo's), small (4x512), base (BERT-Base) "
                               "(default tiny)", group=MAIN, modes=FROM_SCRATCH,
            choices=tuple(sorted(MODEL_SIZES)), presets={size: size for size in MODEL_SIZES}),
    Setting("corpus", str, "all | discharge | comma list of note categories (default all)", default="all",
            group=MAIN, stages=_to(SECTION_SPLIT)),
    Setting("reference", str, "a published model (HF folder or TF checkpoint) to compare with "
                              "(default: none)", group=MAIN, path=True, runtime_only=True),
    Setting("eval_data", str, "folder of downstream task folders (mednli/, NER folders with "
                              "train/dev/test.tsv) to evaluate the export on (default: none)",
            group=MAIN, path=True, runtime_only=True),
    Setting("num_workers", int, "worker processes of the text and TFRecord steps (default: the CPU count)",
            group=MAIN, runtime_only=True,
            stages=(StageFlag(SECTION_SPLIT), StageFlag(CREATE_PRETRAINING_DATA))),
    # --- overrides of the presets
    Setting("do_lower_case", _bool, "lower-case the text (the clinical models are cased)", default=False,
            stages=(StageFlag(BUILD_VOCAB), StageFlag(CREATE_PRETRAINING_DATA), StageFlag(RUN_PRETRAINING),
                    StageFlag(CONVERT_TO_HUGGINGFACE))),
    # DEVIATION: max_predictions_per_seq is 20 for TFRecords AND training (the original: 22 to training)
    # The original scripts passed max_predictions_per_seq=22 to run_pretraining but 20 to
    # create_pretraining_data; the records hold 20, so 20 it is (see README, known differences).
    Setting("max_seq_length", int, "tokens per training sequence", default=128, stages=_TFRECORDS_AND_TRAIN),
    Setting("max_predictions_per_seq", int, "masked tokens per sequence", default=20,
            stages=_TFRECORDS_AND_TRAIN),
    Setting("random_seed", int, "seed of the TFRecord step (instances, masking, shuffling)", default=12345,
            stages=_to(CREATE_PRETRAINING_DATA)),
    Setting("dupe_factor", int, "times each document is used with different masks", default=5,
            presets={"demo": 3}, stages=_to(CREATE_PRETRAINING_DATA)),
    Setting("masked_lm_prob", float, "fraction of tokens masked", default=0.15,
            stages=_to(CREATE_PRETRAINING_DATA)),
    Setting("short_seq_prob", float, "probability of a shorter sequence", default=0.1,
            stages=_to(CREATE_PRETRAINING_DATA)),
    Setting("train_batch_size", int, "training batch size", default=32, stages=_TRAIN),
    Setting("eval_batch_size", int, "evaluation batch size", default=8, stages=_TRAIN),
    Setting("learning_rate", float, "peak Adam learning rate", default=5e-5, presets={"demo": 5e-4},
            stages=_TRAIN),
    Setting("num_train_steps", int, "training steps; raising it on a finished run continues training",
            default=150000, presets={"discharge": 100000, "demo": 1000}, stages=_TRAIN,
            extendable=True, redoes=("pretrain",)),
    Setting("num_warmup_steps", int, "linear warm-up steps", default=10000, presets={"demo": 100},
            stages=_TRAIN),
    Setting("save_checkpoints_steps", int, "steps between checkpoints", default=50000,
            presets={"demo": 500}, stages=_TRAIN),
    Setting("keep_checkpoint_max", int, "checkpoints kept (0: all)", default=5, stages=_TRAIN),
    Setting("max_eval_steps", int, "evaluation batches after training", default=100, presets={"demo": 20},
            stages=_TRAIN),
    Setting("spacy_model", str, "spaCy model for the faithful parser-based sentences (e.g. en_core_sci_md; "
                                "default: the model-free splitter)", show_default=False,
            stages=_to(SECTION_SPLIT, when="true")),
    Setting("fix_known_bugs", _bool, "fix the original sectioner's two known bugs (default false: faithful)",
            default=False, show_default=False, stages=_to(SECTION_SPLIT, when="true", switch=True)),
    Setting("drop_iserror", _bool, "drop notes with ISERROR=1 (default false: the original kept them)",
            default=False, show_default=False, stages=_to(SECTION_SPLIT, when="true", switch=True)),
    Setting("shard_notes", int, "a new text shard every K notes of a category (default: one per category)",
            show_default=False, stages=_to(SECTION_SPLIT, when="true")),
    Setting("use_xla", _bool, "XLA compilation in pretraining (default false)", default=False,
            show_default=False, runtime_only=True, stages=_TRAIN),
    Setting("use_amp", _bool, "mixed precision in pretraining (default false)", default=False,
            show_default=False, runtime_only=True, stages=_TRAIN),
    Setting("amp_dtype", str, "bfloat16 | float16, with --use_amp (default bfloat16)", default="bfloat16",
            show_default=False, runtime_only=True, stages=_to(RUN_PRETRAINING, requires="use_amp")),
    Setting("log_every_n_steps", int, "training log line every N steps (default: run_pretraining's)",
            show_default=False, runtime_only=True, stages=_to(RUN_PRETRAINING, when="true")),
    Setting("demo_notes", int, "--demo only: number of synthetic notes", presets={"demo": 1000},
            modes=DEMO_ONLY, stages=_to(SYNTHETIC_NOTES, "notes")),
    Setting("demo_seed", int, "--demo only: seed of the synthetic notes", presets={"demo": 0},
            modes=DEMO_ONLY, stages=_to(SYNTHETIC_NOTES, "seed")),
    Setting("vocab_size", int, "size of the vocabulary built from the notes (--demo, or --init scratch "
                               f"without --vocab; default {DEMO_VOCAB_SIZE} demo, {VOCAB_SIZE_FROM_NOTES} "
                               "scratch)",
            presets={"demo": DEMO_VOCAB_SIZE, "scratch": VOCAB_SIZE_FROM_NOTES}, modes=FROM_SCRATCH,
            show_default=False, stages=_to(BUILD_VOCAB)),
    # Model sizes for training from scratch (--init scratch, and the demo's tiny model).
    # tiny: the demo's; small: 4 layers of 512; base: BERT-Base (12/768/12/3072).
    Setting("tiny_hidden_size", int, "hidden size of a model trained from scratch",
            presets={"tiny": 128, "small": 512, "base": 768}, modes=FROM_SCRATCH),
    Setting("tiny_layers", int, "layers of a model trained from scratch",
            presets={"tiny": 2, "small": 4, "base": 12}, modes=FROM_SCRATCH),
    Setting("tiny_heads", int, "attention heads of a model trained from scratch",
            presets={"tiny": 2, "small": 8, "base": 12}, modes=FROM_SCRATCH),
    Setting("tiny_intermediate_size", int, "feed-forward size of a model trained from scratch",
            presets={"tiny": 512, "small": 2048, "base": 3072}, modes=FROM_SCRATCH),
    # --- distributed runs: passed through, results are the same whatever the layout
    Setting("num_devices", int, "pretraining: accelerators to use (default: the stage's)", group=DISTRIBUTED,
            runtime_only=True, stages=_to(RUN_PRETRAINING, when="set")),
    Setting("worker_hosts", str, "pretraining: comma list host:port of every worker machine",
            group=DISTRIBUTED, runtime_only=True, stages=_to(RUN_PRETRAINING, when="set")),
    Setting("task_index", int, "pretraining: this machine's index in --worker_hosts", group=DISTRIBUTED,
            runtime_only=True, stages=_to(RUN_PRETRAINING, when="set")),
    Setting("iterations_per_loop", int, "pretraining: steps per device loop", group=DISTRIBUTED,
            runtime_only=True, stages=_to(RUN_PRETRAINING, when="set")),
    Setting("scheduler", str, "text and TFRecord steps: address of an existing Dask scheduler",
            group=DISTRIBUTED, runtime_only=True, stages=_TEXT_AND_TFRECORDS_IF_SET),
    Setting("dask_workers", int, "text and TFRecord steps: size of a local Dask cluster", group=DISTRIBUTED,
            runtime_only=True, stages=_TEXT_AND_TFRECORDS_IF_SET),
    # In --help with the main options; listed here so that it follows the Dask flags on
    # section_split's command line, as it always has.
    Setting("note_time_budget", float, "text step: seconds one note may take before it is dropped and "
                                       "counted in text/manifest.json (default: section_split's, 300)",
            group=MAIN, runtime_only=True, stages=_to(SECTION_SPLIT, when="set")),
    # --- evaluation, with --eval_data: the same for both models
    Setting("eval_preset", str, "robust: one setting per task, 5 shared seeds; paper: the original grids "
                                "(default: downstream_tasks.run's, robust)", group=EVALUATION,
            choices=("robust", "paper"), runtime_only=True, redoes=("evaluate",),
            stages=_to(DOWNSTREAM_RUN, "preset", when="set")),
    Setting("eval_seeds", str, "comma list of fine-tuning seeds, the same for both models "
                               "(default: the preset's)", group=EVALUATION, runtime_only=True,
            redoes=("evaluate",), stages=_to(DOWNSTREAM_RUN, "seeds", when="set")),
    Setting("eval_max_steps", int, "cap on the training steps of each fine-tuning (smoke runs; "
                                   "default: none)", group=EVALUATION, runtime_only=True,
            redoes=("evaluate",), stages=_to(DOWNSTREAM_RUN, "max_steps", when="set")),
)


PATHS = tuple(s.name for s in SETTINGS if s.path)
MODEL_SIZE_KEYS = tuple(s.name for s in SETTINGS if s.name.startswith("tiny_"))
# Settings that do not change any output: excluded from the run-folder consistency check.
# The pass-through flags of the distributed stages are here too: results are the same
# whatever the number of workers, devices or machines.
RUNTIME_ONLY = frozenset(s.name for s in SETTINGS if s.runtime_only)
# Settings a finished run may change: raising num_train_steps continues training.
EXTENDABLE = frozenset(s.name for s in SETTINGS if s.extendable)


def step_settings() -> dict[str, tuple[str, ...]]:
    """Per step, the settings its done-marker records: changing one redoes the step."""
    out: dict[str, tuple[str, ...]] = {}
    for s in SETTINGS:
        for step in s.redoes:
            out[step] = out.get(step, ()) + (s.name,)
    return out


def preset_layers(mode: str, corpus: str, model_size: str | None) -> tuple[str, ...]:
    """The preset layers of a run, applied in this order over the defaults. `mode`:
    "demo", "scratch" (--init scratch) or "checkpoint" (--init DIR)."""
    if mode == "demo":
        return ("demo", "tiny")
    layers = tuple(c for c in CORPUS_PRESETS if c == corpus.strip().lower())
    return layers + (("scratch", model_size or "tiny") if mode == "scratch" else ())


def preset_values(mode: str, corpus: str, model_size: str | None = None) -> dict[str, Any]:
    """Every setting that applies in `mode`, at its preset value (no user override)."""
    layers = preset_layers(mode, corpus, model_size)
    values = {}
    for s in SETTINGS:
        if mode in s.modes:
            values[s.name] = next((s.presets[k] for k in reversed(layers) if k in s.presets), s.default)
    return values


def stage_flags(cfg: dict[str, Any], stage: str) -> list[str]:
    """The flags of `stage` (a module a step runs) that the table passes from `cfg`."""
    out = []
    for s in SETTINGS:
        for to in s.stages:
            if to.stage == stage and s.name in cfg and _passes(to, cfg[s.name], cfg):
                name = to.flag or s.name
                out.append(f"--{name}" if to.switch else flag(name, cfg[s.name]))
    return out


def _passes(to: StageFlag, value: Any, cfg: dict[str, Any]) -> bool:
    if to.requires and not cfg.get(to.requires):
        return False
    return {"always": True, "set": value is not None, "true": bool(value)}[to.when]


def flag(name: str, value: Any) -> str:
    """`--name=value`, booleans as absl writes them (true/false)."""
    if isinstance(value, bool):
        return f"--{name}={'true' if value else 'false'}"
    return f"--{name}={value}"


def _preset_help(s: Setting) -> str:
    """The default a --help line shows: the recipe's value, per corpus or model size, and
    the demo's when it differs."""
    sizes = [f"{k} {s.presets[k]}" for k in MODEL_SIZES if k in s.presets]
    if s.default is None and sizes:
        return "from --model_size: " + ", ".join(sizes)
    recipe, demo = s.default, s.presets.get("demo", s.default)
    corpora = [f"{s.presets[c]} for {c}" for c in CORPUS_PRESETS if c in s.presets]
    if corpora:
        recipe = f"{s.default} for --corpus all, " + ", ".join(corpora)
    if recipe is None:
        return f"{demo}"
    if recipe == demo or demo is None:
        return f"{recipe}"
    return f"{recipe}; demo {demo}"


def _help(s: Setting) -> str:
    if s.group == OVERRIDES and s.show_default:
        return f"{s.help} (default {_preset_help(s)})"
    return s.help


def _add_settings(group: Any, name: str) -> None:
    """The table's options of one --help group; every default is None, so that what the
    user gave is known (the preset fills the rest)."""
    for s in SETTINGS:
        if s.group == name:
            group.add_argument(f"--{s.name}", type=s.type, default=None, help=_help(s),
                               **({"choices": s.choices} if s.choices else {}))


def build_parser() -> argparse.ArgumentParser:
    """The recipe's command line: what to run and where, then the table's settings."""
    p = argparse.ArgumentParser(
        prog="run_pretraining.sh",
        description="The clinicalBERT recipe: notes -> sections/sentences -> TFRecords -> "
                    "pretraining -> Hugging Face export -> comparison. Relative paths are "
                    "relative to the directory you run the command from.")
    p.add_argument("--demo", action="store_true",
                   help="run everything on synthetic notes with a tiny BERT trained from scratch")
    p.add_argument("--run_dir", help="run folder (default: runs/<corpus>-<init kind>, or runs/demo, "
                                     "under the current directory)")
    p.add_argument("--steps", default="all",
                   help=f"comma list of steps to run, in recipe order: {','.join(STEP_NAMES)} (default all)")
    _add_settings(p, MAIN)
    _add_settings(p.add_argument_group("overrides (default: the preset)"), OVERRIDES)
    _add_settings(p.add_argument_group("distributed runs (passed to the stages; do not change results)"),
                  DISTRIBUTED)
    _add_settings(p.add_argument_group("evaluation (with --eval_data; passed to downstream_tasks.run)"),
                  EVALUATION)
    return p
