"""The recipe's steps. Each runs one stage CLI as a subprocess (printing the command, so
the step can be rerun alone) and returns the record its done-marker keeps (see
recipe.runner for markers, skipping and redoing). The paths a step passes come from the
run folder's layout (recipe.run_folder); every setting it passes comes from the settings
table (recipe.settings.stage_flags), so a new setting never needs a change here.

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

from recipe import settings
from recipe.config import REPO, RecipeError
from recipe.run_folder import Run
from recipe.summary import write_summary
from recipe.validate import eval_tasks, scratch_bert_config
from utils.atomic import atomic_path, write_text_atomic


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


# --- steps -----------------------------------------------------------------------------

def step_notes(run: Run) -> dict[str, Any] | None:
    """Demo only: deterministic synthetic MIMIC-III-shaped notes."""
    if run.cfg["mode"] != "demo":
        return None
    run_command(run, [settings.SYNTHETIC_NOTES, "--out", str(run.notes),
                      *settings.stage_flags(run.cfg, settings.SYNTHETIC_NOTES)])
    return {"outputs": [str(run.notes)]}


def step_sections(run: Run) -> dict[str, Any]:
    run_command(run, [settings.SECTION_SPLIT, "--input", str(run.notes), "--output_dir", str(run.text_dir),
                      *settings.stage_flags(run.cfg, settings.SECTION_SPLIT)])
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
        run_command(run, [settings.BUILD_VOCAB, "--input_file", ",".join(str(p) for p in text_shards(run)),
                          "--output_file", str(vocab), *settings.stage_flags(c, settings.BUILD_VOCAB)])
    vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    bert_config = scratch_bert_config(c, vocab_size)
    write_text_atomic(run.bert_config_file, json.dumps(bert_config, indent=2) + "\n")
    return {"outputs": [str(vocab), str(run.bert_config_file)], "vocab_size": vocab_size}


def step_tfrecords(run: Run) -> dict[str, Any]:
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
    run_command(run, [settings.CREATE_PRETRAINING_DATA, "--input_file", inputs,
                      "--output_dir", str(run.tfrecord_dir), "--vocab_file", str(run.vocab_file),
                      *settings.stage_flags(run.cfg, settings.CREATE_PRETRAINING_DATA)])
    return {"outputs": [str(p) for p in sorted(run.tfrecord_dir.glob("*.tfrecord"))]}


def step_pretrain(run: Run) -> dict[str, Any]:
    c = run.cfg
    args = [settings.RUN_PRETRAINING, "--input_file", str(run.tfrecord_dir / "*.tfrecord"),
            "--output_dir", str(run.model_dir), "--bert_config_file", str(run.bert_config_file),
            "--do_train=true", "--do_eval=true"]
    if c.get("init"):
        args.append(settings.flag("init_checkpoint", c["init"]["prefix"]))
    run_command(run, args + settings.stage_flags(c, settings.RUN_PRETRAINING))
    return {"outputs": [str(run.model_dir / "eval_results.txt")]}


def step_export(run: Run) -> dict[str, Any]:
    run_command(run, [settings.CONVERT_TO_HUGGINGFACE, "--tf_checkpoint", str(run.model_dir),
                      "--bert_config_file", str(run.bert_config_file), "--vocab_file", str(run.vocab_file),
                      "--output_dir", str(run.export_dir), "--overwrite",
                      *settings.stage_flags(run.cfg, settings.CONVERT_TO_HUGGINGFACE)])
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
            run_command(run, [settings.DOWNSTREAM_RUN, "--task", kind, "--data_dir", str(folder),
                              "--model", model, "--output_dir", str(out / label),
                              *settings.stage_flags(run.cfg, settings.DOWNSTREAM_RUN)])
            outputs.append(str(out / label))
        if reference:
            run_command(run, ["downstream_tasks.compare", str(out / "ours"), str(out / "reference"),
                              "--output_dir", str(out / "compare")])
            outputs.append(str(out / "compare"))
    return {"outputs": outputs}


def step_summary(run: Run) -> dict[str, Any]:
    write_summary(run)
    return {"outputs": [str(run.dir / "summary.json")]}


STEPS: dict[str, Callable[[Run], dict[str, Any] | None]] = {
    "notes": step_notes, "sections": step_sections, "vocab": step_vocab,
    "tfrecords": step_tfrecords, "pretrain": step_pretrain, "export": step_export,
    "compare": step_compare, "evaluate": step_evaluate, "summary": step_summary,
}
