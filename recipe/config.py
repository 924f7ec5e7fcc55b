"""Recipe settings: the published presets, the demo preset, user overrides, and the
effective configuration written to (and checked against) `<run_dir>/config.json`.
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

REPO = Path(__file__).resolve().parents[1]

# The published clinical recipe (Alsentzer et al. 2019, the Bio_ClinicalBERT scripts).
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
    tiny_hidden_size=128, tiny_layers=2, tiny_heads=2, tiny_intermediate_size=512,
    dupe_factor=3, train_batch_size=32, learning_rate=5e-4, num_train_steps=1000,
    num_warmup_steps=100, save_checkpoints_steps=500, max_eval_steps=20,
)

STEP_NAMES = ("notes", "sections", "vocab", "tfrecords", "pretrain", "export", "compare", "summary")

# Settings that do not change any output: excluded from the run-folder consistency check.
RUNTIME_ONLY = {"num_workers", "steps", "use_xla", "use_amp", "amp_dtype", "log_every_n_steps",
                "reference", "python"}


class RecipeError(Exception):
    """A problem with the user's request: printed as one line, exit code 2."""


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
    (the newest is taken).
    """
    d = Path(folder)
    if not d.is_dir():
        raise RecipeError(f"--init {folder}: not a directory")
    indexes = sorted(d.glob("*.index"))
    if not indexes:
        raise RecipeError(f"--init {folder}: no TensorFlow checkpoint (*.ckpt.index) in it")
    prefixes = [str(p)[: -len(".index")] for p in indexes]

    def rank(prefix: str) -> tuple[int, int]:
        name = Path(prefix).name
        m = re.search(r"-(\d+)$", name)
        preferred = name in ("biobert_model.ckpt", "bert_model.ckpt")
        return (1 if preferred else 0, int(m.group(1)) if m else -1)

    prefix = max(prefixes, key=rank)
    name = Path(prefix).name
    kind = "biobert" if "biobert" in name.lower() or "biobert" in d.name.lower() else "bert"
    config = d / "bert_config.json"
    vocab = d / "vocab.txt"
    for f in (config, vocab):
        if not f.is_file():
            raise RecipeError(f"--init {folder}: {f.name} missing (expected beside {name})")
    return InitCheckpoint(prefix, str(config), str(vocab), kind)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_pretraining.sh",
        description="The clinicalBERT recipe: notes -> sections/sentences -> TFRecords -> "
                    "pretraining -> Hugging Face export -> comparison.")
    p.add_argument("--demo", action="store_true",
                   help="run everything on synthetic notes with a tiny BERT trained from scratch")
    p.add_argument("--notes", help="NOTEEVENTS.csv(.gz) (MIMIC-III) or discharge/radiology.csv.gz (MIMIC-IV)")
    p.add_argument("--init", help="folder of the checkpoint to continue from (BioBERT v1.0 or BERT-Base cased)")
    p.add_argument("--corpus", default=None, help="all | discharge | comma list of categories (default all)")
    p.add_argument("--run_dir", help="run folder (default runs/<corpus>-<init>, or runs/demo)")
    p.add_argument("--steps", default="all",
                   help=f"comma list of steps to run, in recipe order: {','.join(STEP_NAMES)}")
    p.add_argument("--reference", help="a published model (HF folder or TF checkpoint) to compare with")
    p.add_argument("--num_workers", type=int, default=os.cpu_count() or 1)
    g = p.add_argument_group("overrides (default: the preset)")
    for key, typ in [("do_lower_case", _bool), ("max_seq_length", int), ("max_predictions_per_seq", int),
                     ("random_seed", int), ("dupe_factor", int), ("masked_lm_prob", float),
                     ("short_seq_prob", float), ("train_batch_size", int), ("eval_batch_size", int),
                     ("learning_rate", float), ("num_train_steps", int), ("num_warmup_steps", int),
                     ("save_checkpoints_steps", int), ("keep_checkpoint_max", int),
                     ("max_eval_steps", int), ("spacy_model", str), ("fix_known_bugs", _bool),
                     ("drop_iserror", _bool), ("shard_notes", int), ("use_xla", _bool),
                     ("use_amp", _bool), ("amp_dtype", str), ("log_every_n_steps", int),
                     ("demo_notes", int), ("demo_seed", int), ("vocab_size", int),
                     ("tiny_hidden_size", int), ("tiny_layers", int), ("tiny_heads", int),
                     ("tiny_intermediate_size", int)]:
        g.add_argument(f"--{key}", type=typ, default=None)
    return p


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def effective_config(args: argparse.Namespace) -> dict[str, Any]:
    """Preset + overrides -> the full configuration of this run (what config.json holds)."""
    if args.demo and (args.notes or args.init):
        raise RecipeError("--demo uses synthetic notes and a tiny model: do not combine it with --notes/--init")
    if not args.demo and not args.notes:
        raise RecipeError("give --notes NOTEEVENTS.csv.gz (and --init CHECKPOINT_DIR), or --demo")
    corpus = args.corpus or "all"
    cfg: dict[str, Any] = dict(PUBLISHED)
    cfg.update(mode="demo" if args.demo else "recipe", corpus=corpus, spacy_model=None,
               fix_known_bugs=False, drop_iserror=False, shard_notes=None, use_xla=False,
               use_amp=False, amp_dtype="bfloat16", log_every_n_steps=None)
    if args.demo:
        cfg.update(DEMO)
        cfg.update(notes=None, init=None, init_kind="scratch")
    else:
        notes = Path(args.notes)
        if not notes.is_file():
            raise RecipeError(f"--notes {args.notes}: no such file")
        cfg.update(notes=str(notes.resolve()))
        cfg["num_train_steps"] = STEPS_BY_CORPUS.get(corpus, 150000)
        if args.init:
            init = find_init_checkpoint(args.init)
            cfg.update(init=dataclasses.asdict(init), init_kind=init.kind)
        else:
            raise RecipeError("--init CHECKPOINT_DIR is required for the clinical recipe "
                              "(BioBERT v1.0 or BERT-Base cased); use --demo to train a tiny model from scratch")
    for key, value in vars(args).items():
        if key in cfg and value is not None and key not in ("notes", "init", "corpus"):
            cfg[key] = value
    cfg["num_workers"] = args.num_workers
    if cfg["num_warmup_steps"] > cfg["num_train_steps"]:
        raise RecipeError(f"num_warmup_steps {cfg['num_warmup_steps']} > num_train_steps {cfg['num_train_steps']}")
    return cfg


def default_run_dir(cfg: dict[str, Any]) -> Path:
    if cfg["mode"] == "demo":
        return REPO / "runs" / "demo"
    corpus = re.sub(r"[^a-z0-9]+", "_", cfg["corpus"].lower()).strip("_")
    return REPO / "runs" / f"{corpus}-{cfg['init_kind']}"


def settings_of(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of the configuration that determines outputs."""
    return {k: v for k, v in cfg.items() if k not in RUNTIME_ONLY}


def lock_run_dir(run_dir: Path, cfg: dict[str, Any]) -> None:
    """Write config.json, or check that an existing one has the same settings.

    Outputs of different settings are never mixed: a changed setting is refused with the
    list of differences (use a new --run_dir, or delete the old one).
    """
    from utils.atomic import write_json_atomic

    path = run_dir / "config.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RecipeError(f"{path}: not valid JSON ({e}); delete the run folder or fix the file")
        before, now = settings_of(old), settings_of(cfg)
        diffs = [f"{k}: {before.get(k)!r} -> {now.get(k)!r}"
                 for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
        if diffs:
            raise RecipeError(f"{run_dir} holds a run with other settings ({'; '.join(diffs)}); "
                              "use a new --run_dir, or delete that folder to start over")
        if old == cfg:
            return
    write_json_atomic(path, cfg)


def selected_steps(spec: str) -> list[str]:
    if spec == "all":
        return list(STEP_NAMES)
    steps = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEP_NAMES]
    if unknown:
        raise RecipeError(f"--steps: unknown step(s) {', '.join(unknown)}; known: {', '.join(STEP_NAMES)}")
    return [s for s in STEP_NAMES if s in steps]
