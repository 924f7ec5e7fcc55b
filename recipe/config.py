"""Recipe settings: the published presets, the demo preset, model sizes for training from
scratch, user overrides, and the effective configuration written to (and checked
against) `<run_dir>/config.json`.

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
from typing import Any, Callable

from utils.cli import UserError, os_error_message

REPO = Path(__file__).resolve().parents[1]

# The published clinical recipe (Alsentzer et al. 2019, the Bio_ClinicalBERT scripts).
# DEVIATION: max_predictions_per_seq is 20 for TFRecords AND training (the original: 22 to training)
# The original scripts passed max_predictions_per_seq=22 to run_pretraining but 20 to
# create_pretraining_data; the records hold 20, so 20 it is (see README, known differences).
PUBLISHED = dict(
    do_lower_case=False, max_seq_length=128, max_predictions_per_seq=20, random_seed=12345,
    dupe_factor=5, masked_lm_prob=0.15, short_seq_prob=0.1,
    train_batch_size=32, eval_batch_size=8, learning_rate=5e-5, num_warmup_steps=10000,
    save_checkpoints_steps=50000, keep_checkpoint_max=5, max_eval_steps=100,
)
STEPS_BY_CORPUS = {"all": 150000, "discharge": 100000}

# The demo: synthetic notes, a vocab built from them, a tiny BERT trained from scratch.
# Sized to finish in a few minutes on 2 CPU cores and still learn the frequent patterns.
DEMO = dict(
    demo_notes=1000, demo_seed=0, vocab_size=4000,
    dupe_factor=3, train_batch_size=32, learning_rate=5e-4, num_train_steps=1000,
    num_warmup_steps=100, save_checkpoints_steps=500, max_eval_steps=20,
)
VOCAB_SIZE_FROM_NOTES = 30000  # --init scratch without --vocab: a BERT-sized WordPiece vocab

# Model sizes for training from scratch (--init scratch, and the demo's tiny model).
# tiny: the demo's; small: 4 layers of 512; base: BERT-Base (12/768/12/3072).
MODEL_SIZES = {
    "tiny": dict(tiny_hidden_size=128, tiny_layers=2, tiny_heads=2, tiny_intermediate_size=512),
    "small": dict(tiny_hidden_size=512, tiny_layers=4, tiny_heads=8, tiny_intermediate_size=2048),
    "base": dict(tiny_hidden_size=768, tiny_layers=12, tiny_heads=12, tiny_intermediate_size=3072),
}
TINY_KEYS = tuple(MODEL_SIZES["tiny"])

STEP_NAMES = ("notes", "sections", "vocab", "tfrecords", "pretrain", "export", "compare",
              "evaluate", "summary")

# Settings that do not change any output: excluded from the run-folder consistency check.
# The pass-through flags of the distributed stages are here too: results are the same
# whatever the number of workers, devices or machines.
RUNTIME_ONLY = {"num_workers", "steps", "use_xla", "use_amp", "amp_dtype", "log_every_n_steps",
                "reference", "eval_data", "python", "num_devices", "worker_hosts", "task_index",
                "iterations_per_loop", "scheduler", "dask_workers", "eval_preset", "eval_seeds",
                "eval_max_steps", "note_time_budget"}
# Settings a finished run may change: raising num_train_steps continues training.
EXTENDABLE = {"num_train_steps"}


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


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _preset_default(key: str) -> str:
    recipe, demo = PUBLISHED.get(key), DEMO.get(key, PUBLISHED.get(key))
    if key == "num_train_steps":
        recipe = "150000 for --corpus all, 100000 for discharge"
    if recipe is None and key in MODEL_SIZES["tiny"]:
        return "from --model_size: " + ", ".join(f"{s} {v[key]}" for s, v in MODEL_SIZES.items())
    if recipe is None:
        return f"{demo}"
    if recipe == demo or demo is None:
        return f"{recipe}"
    return f"{recipe}; demo {demo}"


# (option, type, help). Defaults come from the presets and are shown by --help.
OVERRIDES: list[tuple[str, Callable[[str], Any], str]] = [
    ("do_lower_case", _bool, "lower-case the text (the clinical models are cased)"),
    ("max_seq_length", int, "tokens per training sequence"),
    ("max_predictions_per_seq", int, "masked tokens per sequence"),
    ("random_seed", int, "seed of the TFRecord step (instances, masking, shuffling)"),
    ("dupe_factor", int, "times each document is used with different masks"),
    ("masked_lm_prob", float, "fraction of tokens masked"),
    ("short_seq_prob", float, "probability of a shorter sequence"),
    ("train_batch_size", int, "training batch size"),
    ("eval_batch_size", int, "evaluation batch size"),
    ("learning_rate", float, "peak Adam learning rate"),
    ("num_train_steps", int, "training steps; raising it on a finished run continues training"),
    ("num_warmup_steps", int, "linear warm-up steps"),
    ("save_checkpoints_steps", int, "steps between checkpoints"),
    ("keep_checkpoint_max", int, "checkpoints kept (0: all)"),
    ("max_eval_steps", int, "evaluation batches after training"),
    ("spacy_model", str, "spaCy model for the faithful parser-based sentences (e.g. en_core_sci_md; "
                         "default: the model-free splitter)"),
    ("fix_known_bugs", _bool, "fix the original sectioner's two known bugs (default false: faithful)"),
    ("drop_iserror", _bool, "drop notes with ISERROR=1 (default false: the original kept them)"),
    ("shard_notes", int, "a new text shard every K notes of a category (default: one per category)"),
    ("use_xla", _bool, "XLA compilation in pretraining (default false)"),
    ("use_amp", _bool, "mixed precision in pretraining (default false)"),
    ("amp_dtype", str, "bfloat16 | float16, with --use_amp (default bfloat16)"),
    ("log_every_n_steps", int, "training log line every N steps (default: run_pretraining's)"),
    ("demo_notes", int, "--demo only: number of synthetic notes"),
    ("demo_seed", int, "--demo only: seed of the synthetic notes"),
    ("vocab_size", int, "size of the vocabulary built from the notes (--demo, or --init scratch "
                        f"without --vocab; default {DEMO['vocab_size']} demo, {VOCAB_SIZE_FROM_NOTES} scratch)"),
    ("tiny_hidden_size", int, "hidden size of a model trained from scratch"),
    ("tiny_layers", int, "layers of a model trained from scratch"),
    ("tiny_heads", int, "attention heads of a model trained from scratch"),
    ("tiny_intermediate_size", int, "feed-forward size of a model trained from scratch"),
]
_NO_PRESET_HELP = {"spacy_model", "fix_known_bugs", "drop_iserror", "shard_notes", "use_xla", "use_amp",
                   "amp_dtype", "log_every_n_steps", "vocab_size"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_pretraining.sh",
        description="The clinicalBERT recipe: notes -> sections/sentences -> TFRecords -> "
                    "pretraining -> Hugging Face export -> comparison. Relative paths are "
                    "relative to the directory you run the command from.")
    p.add_argument("--demo", action="store_true",
                   help="run everything on synthetic notes with a tiny BERT trained from scratch")
    p.add_argument("--notes", help="NOTEEVENTS.csv(.gz) (MIMIC-III) or discharge/radiology.csv.gz (MIMIC-IV)")
    p.add_argument("--init", help="folder of the checkpoint to continue from (BioBERT v1.0 or BERT-Base "
                                  "cased), or 'scratch' to train from random weights")
    p.add_argument("--vocab", help="with --init scratch: the WordPiece vocab.txt to use (e.g. BERT-Base "
                                   "cased's); default: a vocab built from the notes")
    p.add_argument("--model_size", choices=sorted(MODEL_SIZES),
                   help="with --init scratch: tiny (the demo's), small (4x512), base (BERT-Base) "
                        "(default tiny)")
    p.add_argument("--corpus", default=None,
                   help="all | discharge | comma list of note categories (default all)")
    p.add_argument("--run_dir", help="run folder (default: runs/<corpus>-<init kind>, or runs/demo, "
                                     "under the current directory)")
    p.add_argument("--steps", default="all",
                   help=f"comma list of steps to run, in recipe order: {','.join(STEP_NAMES)} (default all)")
    p.add_argument("--reference", help="a published model (HF folder or TF checkpoint) to compare with "
                                       "(default: none)")
    p.add_argument("--eval_data", help="folder of downstream task folders (mednli/, NER folders with "
                                       "train/dev/test.tsv) to evaluate the export on (default: none)")
    p.add_argument("--num_workers", type=int, default=None,
                   help="worker processes of the text and TFRecord steps (default: the CPU count)")
    p.add_argument("--note_time_budget", type=float, default=None,
                   help="text step: seconds one note may take before it is dropped and counted in "
                        "text/manifest.json (default: section_split's, 300)")
    g = p.add_argument_group("overrides (default: the preset)")
    for key, typ, text in OVERRIDES:
        extra = "" if key in _NO_PRESET_HELP else f" (default {_preset_default(key)})"
        g.add_argument(f"--{key}", type=typ, default=None, help=text + extra)
    d = p.add_argument_group("distributed runs (passed to the stages; do not change results)")
    d.add_argument("--num_devices", type=int, help="pretraining: accelerators to use (default: the stage's)")
    d.add_argument("--worker_hosts", help="pretraining: comma list host:port of every worker machine")
    d.add_argument("--task_index", type=int, help="pretraining: this machine's index in --worker_hosts")
    d.add_argument("--iterations_per_loop", type=int, help="pretraining: steps per device loop")
    d.add_argument("--scheduler", help="text and TFRecord steps: address of an existing Dask scheduler")
    d.add_argument("--dask_workers", type=int, help="text and TFRecord steps: size of a local Dask cluster")
    e = p.add_argument_group("evaluation (with --eval_data; passed to downstream_tasks.run)")
    e.add_argument("--eval_preset", choices=("robust", "paper"),
                   help="robust: one setting per task, 5 shared seeds; paper: the original grids "
                        "(default: downstream_tasks.run's, robust)")
    e.add_argument("--eval_seeds", help="comma list of fine-tuning seeds, the same for both models "
                                        "(default: the preset's)")
    e.add_argument("--eval_max_steps", type=int, help="cap on the training steps of each fine-tuning "
                                                      "(smoke runs; default: none)")
    return p


def resolve_path(value: str | None) -> str | None:
    """A user path, resolved against the current directory (the caller's)."""
    return str(Path(value).expanduser().resolve()) if value else None


def _refuse_misplaced_options(args: argparse.Namespace, scratch: bool) -> None:
    """Options that only apply in some modes are refused elsewhere (never silently ignored)."""
    given = {k for k, v in vars(args).items() if v is not None}
    if not args.demo:
        demo_only = sorted(given & {"demo_notes", "demo_seed"})
        if demo_only:
            raise RecipeUsageError(f"--{demo_only[0]} applies only with --demo")
    if args.demo and (args.notes or args.init or args.vocab):
        raise RecipeUsageError("--demo uses synthetic notes, its own vocab and a tiny model: do not combine "
                          "it with --notes/--init/--vocab")
    if args.demo and args.model_size not in (None, "tiny"):
        raise RecipeUsageError("--demo trains the tiny model; for another --model_size use --notes FILE --init scratch")
    if not (args.demo or scratch):
        wrong = sorted(given & {"vocab", "model_size", "vocab_size", *TINY_KEYS})
        if wrong:
            raise RecipeUsageError(f"--{wrong[0]} applies only to a model trained from scratch (--init scratch "
                              "or --demo); a checkpoint folder brings its own vocab and config")
    if "vocab_size" in given and args.vocab:
        raise RecipeUsageError("--vocab_size sizes a vocabulary built from the notes; with --vocab FILE "
                          "the file's size is used")
    size = args.model_size or "tiny"
    if size != "tiny":
        wrong = sorted(given & set(TINY_KEYS))
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
    corpus = args.corpus or "all"
    cfg: dict[str, Any] = dict(PUBLISHED)
    cfg.update(mode="demo" if args.demo else "recipe", corpus=corpus, spacy_model=None,
               fix_known_bugs=False, drop_iserror=False, shard_notes=None, use_xla=False,
               use_amp=False, amp_dtype="bfloat16", log_every_n_steps=None, vocab=None)
    if args.demo:
        cfg.update(DEMO, **MODEL_SIZES["tiny"], model_size="tiny", notes=None, init=None, init_kind="scratch")
    else:
        notes = Path(resolve_path(args.notes))
        if not notes.is_file():
            raise RecipeError(f"--notes {args.notes}: no such file" + (f" ({notes})" if str(notes) != args.notes else ""))
        cfg.update(notes=str(notes), num_train_steps=STEPS_BY_CORPUS.get(corpus.strip().lower(), 150000))
        if not args.init:
            raise RecipeUsageError("--init is required with --notes: a checkpoint folder (BioBERT v1.0 or "
                              "BERT-Base cased) to continue from, or 'scratch'; or use --demo")
        if scratch:
            size = args.model_size or "tiny"
            cfg.update(MODEL_SIZES[size], model_size=size, init=None, init_kind="scratch",
                       vocab=resolve_path(args.vocab),
                       vocab_size=None if args.vocab else VOCAB_SIZE_FROM_NOTES)
            if cfg["vocab"] and not Path(cfg["vocab"]).is_file():
                raise RecipeError(f"--vocab {args.vocab}: no such file")
        else:
            init = find_init_checkpoint(resolve_path(args.init))
            cfg.update(init=dataclasses.asdict(init), init_kind=init.kind)
    for key, value in vars(args).items():
        if key in cfg and value is not None and key not in ("notes", "init", "corpus", "vocab"):
            cfg[key] = value
    cfg["num_workers"] = args.num_workers if args.num_workers is not None else _cpu_count()
    cfg["reference"] = resolve_path(args.reference)
    cfg["eval_data"] = resolve_path(args.eval_data)
    for key in ("num_devices", "worker_hosts", "task_index", "iterations_per_loop", "scheduler", "dask_workers",
                "eval_preset", "eval_seeds", "eval_max_steps", "note_time_budget"):
        cfg[key] = getattr(args, key)
    return cfg


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
