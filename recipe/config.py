"""Recipe settings: one table (SETTINGS) of every setting of a run, with the published
recipe's values, the demo's and the model sizes' for training from scratch; from it, the
command-line parser, the effective configuration written to (and checked against)
`<run_dir>/config.json`, and the flags each stage CLI is given.

Every path the user gives is resolved against the directory the command was run from
and stored resolved, so the same file given relative or absolute is the same setting.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from utils.cli import UserError, os_error_message

REPO = Path(__file__).resolve().parents[1]

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


class RecipeError(UserError):
    """A problem with the user's request: printed as one line, exit status 1."""


class RecipeUsageError(RecipeError):
    """Options that contradict each other or do not apply: exit status 2, as argparse's."""

    exit_code = 2


@dataclass
class InitCheckpoint:
    """A downloaded BERT/BioBERT folder: checkpoint prefix, config and vocab inside it."""
    prefix: str
    bert_config_file: str
    vocab_file: str
    kind: str


def find_init_checkpoint(folder: str) -> InitCheckpoint:
    """Locate the checkpoint prefix, bert_config.json and vocab.txt in `folder`.

    BioBERT v1.0 names its checkpoint `biobert_model.ckpt`, Google's BERT
    `bert_model.ckpt`; a folder written by our own run_pretraining holds `model.ckpt-N`
    (the newest is taken). The choice is bert.checkpoint_map.resolve_checkpoint's, the
    one rule every tool uses.
    """
    from bert.checkpoint_map import CheckpointError, resolve_checkpoint

    d = Path(folder)
    if not d.is_dir():
        raise RecipeError(f"--init {folder}: not a directory")
    if not any(d.glob("*.index")):
        raise RecipeError(f"--init {folder}: no TensorFlow checkpoint (*.ckpt.index) in it")
    try:
        prefix = resolve_checkpoint(d)
    except CheckpointError as exc:
        raise RecipeError(f"--init {exc}") from None
    name = Path(prefix).name
    kind = "biobert" if "biobert" in name.lower() or "biobert" in d.name.lower() else "bert"
    for f in (d / "bert_config.json", d / "vocab.txt"):
        if not f.is_file():
            raise RecipeError(f"--init {folder}: {f.name} missing (expected beside {name})")
    return InitCheckpoint(prefix, str(d / "bert_config.json"), str(d / "vocab.txt"), kind)


def resolve_path(value: str | None) -> str | None:
    """A user path, resolved against the current directory (the caller's)."""
    return str(Path(value).expanduser().resolve()) if value else None


def _refuse_misplaced_options(args: argparse.Namespace, scratch: bool) -> None:
    """Options that only apply in some modes are refused elsewhere (never silently ignored)."""
    given = {k for k, v in vars(args).items() if v is not None}
    demo_only = {s.name for s in SETTINGS if s.modes == DEMO_ONLY}
    scratch_only = {s.name for s in SETTINGS if s.modes == FROM_SCRATCH}
    if not args.demo:
        wrong = sorted(given & demo_only)
        if wrong:
            raise RecipeUsageError(f"--{wrong[0]} applies only with --demo")
    if args.demo and (args.notes or args.init or args.vocab):
        raise RecipeUsageError("--demo uses synthetic notes, its own vocab and a tiny model: do not combine "
                          "it with --notes/--init/--vocab")
    if args.demo and args.model_size not in (None, "tiny"):
        raise RecipeUsageError("--demo trains the tiny model; for another --model_size use --notes FILE --init scratch")
    if not (args.demo or scratch):
        wrong = sorted(given & scratch_only)
        if wrong:
            raise RecipeUsageError(f"--{wrong[0]} applies only to a model trained from scratch (--init scratch "
                              "or --demo); a checkpoint folder brings its own vocab and config")
    if "vocab_size" in given and args.vocab:
        raise RecipeUsageError("--vocab_size sizes a vocabulary built from the notes; with --vocab FILE "
                          "the file's size is used")
    size = args.model_size or "tiny"
    if size != "tiny":
        wrong = sorted(given & set(MODEL_SIZE_KEYS))
        if wrong:
            raise RecipeUsageError(f"--{wrong[0]} overrides the tiny model's size only (--model_size tiny)")


def effective_config(args: argparse.Namespace) -> dict[str, Any]:
    """Preset + overrides -> the full configuration of this run (what config.json holds).

    Paths are resolved here; existence is checked, content is left to recipe.validate.
    """
    scratch = (args.init or "").strip().lower() == "scratch"
    _refuse_misplaced_options(args, scratch)
    if not args.demo and not args.notes:
        raise RecipeUsageError("give --notes NOTEEVENTS.csv.gz and --init CHECKPOINT_DIR (or --init scratch), "
                          "or --demo")
    mode = "demo" if args.demo else "scratch" if scratch else "checkpoint"
    cfg = preset_values(mode, args.corpus or "all", args.model_size)
    cfg.update(_inputs(args, mode))
    for s in SETTINGS:
        value = getattr(args, s.name)
        if value is not None and not s.path and s.name in cfg:
            cfg[s.name] = value
    if cfg["num_workers"] is None:
        cfg["num_workers"] = _cpu_count()
    return cfg


def _inputs(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """The run's mode and input files and folders, resolved and checked to exist."""
    out: dict[str, Any] = {name: resolve_path(getattr(args, name)) for name in PATHS}
    out["mode"] = "demo" if mode == "demo" else "recipe"
    if mode == "demo":
        return dict(out, init_kind="scratch")
    notes = Path(out["notes"])
    if not notes.is_file():
        raise RecipeError(f"--notes {args.notes}: no such file" + (f" ({notes})" if str(notes) != args.notes else ""))
    if not args.init:
        raise RecipeUsageError("--init is required with --notes: a checkpoint folder (BioBERT v1.0 or "
                          "BERT-Base cased) to continue from, or 'scratch'; or use --demo")
    if mode == "scratch":
        if out["vocab"] and not Path(out["vocab"]).is_file():
            raise RecipeError(f"--vocab {args.vocab}: no such file")
        vocab_size = {"vocab_size": None} if out["vocab"] else {}
        return dict(out, init=None, init_kind="scratch", **vocab_size)
    init = find_init_checkpoint(out["init"])
    return dict(out, init=dataclasses.asdict(init), init_kind=init.kind)


def _cpu_count() -> int:
    """CPUs this process may use (the affinity mask, e.g. under taskset or a container quota)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_run_dir(cfg: dict[str, Any]) -> Path:
    """runs/demo or runs/<corpus>-<init kind>, under the current directory (the caller's)."""
    if cfg["mode"] == "demo":
        return Path.cwd() / "runs" / "demo"
    corpus = re.sub(r"[^a-z0-9]+", "_", cfg["corpus"].lower()).strip("_")
    return Path.cwd() / "runs" / f"{corpus}-{cfg['init_kind']}"


def settings_of(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of the configuration that determines outputs and may not change in a run folder."""
    return {k: v for k, v in cfg.items() if k not in RUNTIME_ONLY and k not in EXTENDABLE}


CONFIG_KIND = "recipe.config"
_HEADER = ("kind", "version")  # config.json = this header + the configuration's keys, flat
OLD_RUN_ADVICE = "use a new --run_dir, or finish that run with the version of this project that started it"


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The configuration in the run folder's config.json (without its header), or None when
    it has none. config.json is the folder's settings lock: the effective configuration
    with a utils.resume_record header (kind, format version) on top, flat so that people
    and scripts read `config["num_train_steps"]`. One of an older format is refused with
    one line (utils.resume_record.OldRecordError), before anything is written."""
    from utils.resume_record import check_version

    path = run_dir / "config.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: not valid JSON ({e}); delete the run folder or fix the file") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: not a run configuration (not a JSON object); delete the run folder")
    check_version(path, data, OLD_RUN_ADVICE)
    if data.get("kind") != CONFIG_KIND:
        raise RecipeError(f"{path}: not a run configuration (kind {data.get('kind')!r}); give a new --run_dir")
    return {k: v for k, v in data.items() if k not in _HEADER}


def check_same_settings(run_dir: Path, old: dict[str, Any], cfg: dict[str, Any]) -> None:
    """Outputs of different settings are never mixed: a changed setting is refused with the
    list of differences (utils.resume_record's one settings message)."""
    from utils.resume_record import settings_mismatch

    message = settings_mismatch(run_dir, settings_of(old), settings_of(cfg),
                                "use a new --run_dir, or the same settings (or delete that folder to start over)")
    if message:
        raise RecipeError(message)


def lock_run_dir(run_dir: Path, cfg: dict[str, Any]) -> None:
    """Write config.json, or check that an existing one has the same settings first."""
    from utils.resume_record import RECORD_VERSION, write_record

    old = read_config(run_dir)
    if old is not None:
        check_same_settings(run_dir, old, cfg)
        if old == cfg:
            return
    try:
        write_record(run_dir / "config.json", {"kind": CONFIG_KIND, "version": RECORD_VERSION, **cfg})
    except OSError as exc:  # a read-only or full run folder
        raise RecipeError(os_error_message(exc, "cannot write the run's config")) from None


def selected_steps(spec: str) -> list[str]:
    if spec == "all":
        return list(STEP_NAMES)
    steps = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEP_NAMES]
    if unknown:
        raise RecipeUsageError(f"--steps: unknown step(s) {', '.join(unknown)}; known: {', '.join(STEP_NAMES)}")
    if not steps:
        raise RecipeUsageError(f"--steps names no step; known: {', '.join(STEP_NAMES)}")
    return [s for s in STEP_NAMES if s in steps]
