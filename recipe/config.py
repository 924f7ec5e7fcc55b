"""A run's configuration: the parsed command line plus the settings table's presets
(recipe.settings) -> the effective configuration, written to (and checked against)
`<run_dir>/config.json`; the --init checkpoint folder; the default run folder; --steps.

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
from typing import Any

from recipe.settings import (DEMO_ONLY, EXTENDABLE, FROM_SCRATCH, MODEL_SIZE_KEYS, PATHS, RUNTIME_ONLY, SETTINGS,
                             STEP_NAMES, preset_values)
from utils.cli import UserError, os_error_message

REPO = Path(__file__).resolve().parents[1]


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
