"""The recipe's steps. Each runs one stage CLI as a subprocess (printing the command, so
the step can be rerun alone) and returns the record its done-marker keeps (see
recipe.runner for markers, skipping and redoing).

Stages run in their own process group and die with the recipe (utils.procs): Ctrl-C,
SIGTERM or a SIGKILL of the recipe never leaves a stage or one of its workers running.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from recipe.config import REPO, RecipeError
from recipe.validate import eval_tasks, scratch_bert_config
from utils.atomic import atomic_path, write_text_atomic


class Run:
    """A run folder, its configuration, and the run-folder lock's descriptor (inherited by
    every stage, so the folder stays locked while any stage process lives)."""

    def __init__(self, run_dir: Path, cfg: dict[str, Any], lock_fd: int | None = None) -> None:
        self.dir, self.cfg, self.lock_fd = run_dir, cfg, lock_fd

    # Paths of each stage's outputs inside the run folder.
    @property
    def notes(self) -> Path:
        return Path(self.cfg["notes"]) if self.cfg.get("notes") else self.dir / "notes" / "NOTEEVENTS.csv.gz"

    text_dir = property(lambda self: self.dir / "text")
    tfrecord_dir = property(lambda self: self.dir / "tfrecords")
    model_dir = property(lambda self: self.dir / "pretrain")
    export_dir = property(lambda self: self.dir / "huggingface")
    compare_dir = property(lambda self: self.dir / "compare")
    evaluate_dir = property(lambda self: self.dir / "evaluate")

    @property
    def vocab_file(self) -> Path:
        if self.cfg.get("init"):
            return Path(self.cfg["init"]["vocab_file"])
        return self.dir / "vocab" / "vocab.txt"

    @property
    def bert_config_file(self) -> Path:
        if self.cfg.get("init"):
            return Path(self.cfg["init"]["bert_config_file"])
        return self.dir / "vocab" / "bert_config.json"

    def marker(self, step: str) -> Path:
        return self.dir / ".steps" / f"{step}.json"


def log(msg: str) -> None:
    print(f"[recipe] {msg}", file=sys.stderr, flush=True)


def run_command(run: Run, args: list[str]) -> None:
    """Run a stage CLI with this venv's Python from the repo root; stderr passes through.

    The stage leads its own process group and dies with the recipe; Ctrl-C/SIGTERM stop
    the whole group (utils.procs.run_in_group raises StageInterrupted).
    """
    from utils.procs import run_in_group

    cmd = [sys.executable, "-m", *args]
    log("$ " + " ".join(shlex.quote(a) for a in ["python", "-m", *args]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    fds = (run.lock_fd,) if run.lock_fd is not None else ()
    code = run_in_group(cmd, cwd=str(REPO), env=env, pass_fds=fds)
    if code != 0:
        raise RecipeError(f"step failed (exit {code}): python -m {args[0]}; "
                          "fix the problem above and rerun the same command: finished work is kept")


def flag(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"--{name}={'true' if value else 'false'}"
    return f"--{name}={value}"


def optional_flags(cfg: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """Pass-through flags, given to the stage only when the user set them."""
    return [flag(n, cfg[n]) for n in names if cfg.get(n) is not None]


DASK_FLAGS = ("scheduler", "dask_workers")
TEXT_STEP_FLAGS = ("note_time_budget",)
DISTRIBUTED_TRAINING_FLAGS = ("num_devices", "worker_hosts", "task_index", "iterations_per_loop")


# --- steps -----------------------------------------------------------------------------

def step_notes(run: Run) -> dict[str, Any] | None:
    """Demo only: deterministic synthetic MIMIC-III-shaped notes."""
    if run.cfg["mode"] != "demo":
        return None
    run_command(run, ["data_prep.synthetic_notes", "--notes", str(run.cfg["demo_notes"]),
                      "--seed", str(run.cfg["demo_seed"]), "--out", str(run.notes)])
    return {"outputs": [str(run.notes)]}


def step_sections(run: Run) -> dict[str, Any]:
    c = run.cfg
    args = ["section_split", "--input", str(run.notes), "--output_dir", str(run.text_dir),
            "--corpus", c["corpus"], "--num_workers", str(c["num_workers"])]
    if c.get("shard_notes"):
        args += ["--shard_notes", str(c["shard_notes"])]
    if c.get("fix_known_bugs"):
        args.append("--fix_known_bugs")
    if c.get("drop_iserror"):
        args.append("--drop_iserror")
    if c.get("spacy_model"):
        args += ["--spacy_model", c["spacy_model"]]
    run_command(run, args + optional_flags(c, DASK_FLAGS + TEXT_STEP_FLAGS))
    return {"outputs": [str(run.text_dir / "manifest.json")]}


def text_shards(run: Run) -> list[Path]:
    shards = sorted(p for p in run.text_dir.glob("*.txt"))
    if not shards:
        raise RecipeError(f"{run.text_dir}: no text shards; run the sections step first")
    return shards


def step_vocab(run: Run) -> dict[str, Any] | None:
    """A model trained from scratch: its vocab (--vocab FILE copied into the run folder, or
    a WordPiece vocab trained on the notes' text) and a bert_config.json of the run's size."""
    c = run.cfg
    if c.get("init"):
        return None
    vocab = run.vocab_file
    if c.get("vocab"):
        with atomic_path(vocab) as tmp:
            shutil.copyfile(c["vocab"], tmp)
    else:
        run_command(run, ["bert.build_vocab", "--input_file", ",".join(str(p) for p in text_shards(run)),
                          "--output_file", str(vocab), "--vocab_size", str(c["vocab_size"]),
                          flag("do_lower_case", c["do_lower_case"])])
    vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    bert_config = scratch_bert_config(c, vocab_size)
    write_text_atomic(run.bert_config_file, json.dumps(bert_config, indent=2) + "\n")
    return {"outputs": [str(vocab), str(run.bert_config_file)], "vocab_size": vocab_size}


def step_tfrecords(run: Run) -> dict[str, Any]:
    c = run.cfg
    # A text shard all of whose notes were dropped is empty: it has no documents, which
    # create_pretraining_data (rightly) refuses, so it is left out here, and said so.
    shards = text_shards(run)
    empty = [p.name for p in shards if p.stat().st_size == 0]
    if empty:
        log(f"{len(empty)} empty text shard(s) skipped (every note dropped, see text/manifest.json): "
            + ", ".join(empty))
    inputs = ",".join(str(p) for p in shards if p.stat().st_size > 0)
    if not inputs:
        raise RecipeError(f"{run.text_dir}: every text shard is empty; nothing to make TFRecords from")
    run_command(run, ["bert.create_pretraining_data", "--input_file", inputs,
                      "--output_dir", str(run.tfrecord_dir), "--vocab_file", str(run.vocab_file),
                      flag("do_lower_case", c["do_lower_case"]),
                      flag("max_seq_length", c["max_seq_length"]),
                      flag("max_predictions_per_seq", c["max_predictions_per_seq"]),
                      flag("random_seed", c["random_seed"]), flag("dupe_factor", c["dupe_factor"]),
                      flag("masked_lm_prob", c["masked_lm_prob"]), flag("short_seq_prob", c["short_seq_prob"]),
                      flag("num_workers", c["num_workers"])] + optional_flags(c, DASK_FLAGS))
    return {"outputs": [str(p) for p in sorted(run.tfrecord_dir.glob("*.tfrecord"))]}


def step_pretrain(run: Run) -> dict[str, Any]:
    c = run.cfg
    args = ["bert.run_pretraining", "--input_file", str(run.tfrecord_dir / "*.tfrecord"),
            "--output_dir", str(run.model_dir), "--bert_config_file", str(run.bert_config_file),
            "--do_train=true", "--do_eval=true",
            flag("do_lower_case", c["do_lower_case"]),
            flag("max_seq_length", c["max_seq_length"]),
            flag("max_predictions_per_seq", c["max_predictions_per_seq"]),
            flag("train_batch_size", c["train_batch_size"]), flag("eval_batch_size", c["eval_batch_size"]),
            flag("learning_rate", c["learning_rate"]), flag("num_train_steps", c["num_train_steps"]),
            flag("num_warmup_steps", c["num_warmup_steps"]),
            flag("save_checkpoints_steps", c["save_checkpoints_steps"]),
            flag("keep_checkpoint_max", c["keep_checkpoint_max"]),
            flag("max_eval_steps", c["max_eval_steps"]),
            flag("use_xla", c["use_xla"]), flag("use_amp", c["use_amp"])]
    if c.get("use_amp"):
        args.append(flag("amp_dtype", c["amp_dtype"]))
    if c.get("log_every_n_steps"):
        args.append(flag("log_every_n_steps", c["log_every_n_steps"]))
    if c.get("init"):
        args.append(flag("init_checkpoint", c["init"]["prefix"]))
    run_command(run, args + optional_flags(c, DISTRIBUTED_TRAINING_FLAGS))
    return {"outputs": [str(run.model_dir / "eval_results.txt")]}


def step_export(run: Run) -> dict[str, Any]:
    c = run.cfg
    run_command(run, ["bert.convert_to_huggingface", "--tf_checkpoint", str(run.model_dir),
                      "--bert_config_file", str(run.bert_config_file), "--vocab_file", str(run.vocab_file),
                      flag("do_lower_case", c["do_lower_case"]), "--output_dir", str(run.export_dir),
                      "--overwrite"])
    # The export must equal the checkpoint it came from, tensor for tensor.
    run.compare_dir.mkdir(parents=True, exist_ok=True)
    run_command(run, ["bert.compare_weights", str(run.export_dir), str(run.model_dir), "--no_text",
                      "--max_rel_diff", "0", "--json", str(run.compare_dir / "export_vs_checkpoint.json")])
    return {"outputs": [str(run.export_dir / "config.json"),
                        str(run.compare_dir / "export_vs_checkpoint.json")]}


def step_compare(run: Run) -> dict[str, Any] | None:
    """Against a published model when --reference is given; in the demo, fill-mask
    predictions of the export (loaded with transformers, offline)."""
    reference = run.cfg.get("reference")
    if reference:
        run_command(run, ["bert.compare_weights", str(run.export_dir), reference,
                          "--json", str(run.compare_dir / "vs_reference.json"),
                          "--plot", str(run.compare_dir / "vs_reference.png")])
        return {"outputs": [str(run.compare_dir / "vs_reference.json")]}
    if run.cfg["mode"] == "demo":
        run_command(run, ["recipe.fill_mask", str(run.export_dir)])
    return None


def eval_options(cfg: dict[str, Any]) -> list[str]:
    """downstream_tasks.run flags of the evaluation settings given (the same for both models)."""
    names = {"eval_preset": "preset", "eval_seeds": "seeds", "eval_max_steps": "max_steps"}
    return [flag(names[k], cfg[k]) for k in names if cfg.get(k) is not None]


def step_evaluate(run: Run) -> dict[str, Any] | None:
    """With --eval_data: fine-tune and test the export (and the --reference, when it is an
    HF folder) on each downstream task folder, then compare the two. Results are remade
    whenever the step runs (it runs after the export changed), never mixed with old ones."""
    eval_data, reference = run.cfg.get("eval_data"), run.cfg.get("reference")
    if not eval_data:
        return None
    if run.evaluate_dir.exists():
        log(f"removing the previous {run.evaluate_dir.name}/ results (made from an earlier export)")
        shutil.rmtree(run.evaluate_dir)
    if reference and not (Path(reference) / "config.json").is_file():
        log(f"--reference {reference} is not a Hugging Face folder: only our model is evaluated")
        reference = None
    outputs = []
    for name, kind, folder in eval_tasks(eval_data):
        out = run.evaluate_dir / name
        models = [("ours", str(run.export_dir))] + ([("reference", reference)] if reference else [])
        for label, model in models:
            run_command(run, ["downstream_tasks.run", "--task", kind, "--data_dir", str(folder),
                              "--model", model, "--output_dir", str(out / label), *eval_options(run.cfg)])
            outputs.append(str(out / label))
        if reference:
            run_command(run, ["downstream_tasks.compare", str(out / "ours"), str(out / "reference"),
                              "--output_dir", str(out / "compare")])
            outputs.append(str(out / "compare"))
    return {"outputs": outputs}


def step_summary(run: Run) -> dict[str, Any]:
    from recipe.summary import write_summary

    write_summary(run)
    return {"outputs": [str(run.dir / "summary.json")]}


STEPS: dict[str, Callable[[Run], dict[str, Any] | None]] = {
    "notes": step_notes, "sections": step_sections, "vocab": step_vocab,
    "tfrecords": step_tfrecords, "pretrain": step_pretrain, "export": step_export,
    "compare": step_compare, "evaluate": step_evaluate, "summary": step_summary,
}
