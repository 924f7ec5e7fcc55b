"""Running the steps of a run folder: done-markers, input fingerprints, redoing what is stale.

Each step leaves `<run_dir>/.steps/<step>.json`, a utils.resume_record record of kind
`recipe.<step>`: "started" (with the fingerprints of the inputs it depends on) when it
begins, "done" (plus its outputs' sizes and hashes and its counts) when it ends. A step
is skipped only when its marker is "done" and meets the one resume rule
(utils.resume_record.unmet): same settings, inputs with the same content as now, outputs
present with their recorded sizes. A marker of an older format is refused (one line: use
a new --run_dir). Once a step runs, every step after it runs too (their outputs were
made from the old ones).

If an input changed since a step ran (a new notes file at the same path, another
checkpoint...), that step and every step after it are redone: their markers and partial
work are removed, and the log says which input changed and how. Raising num_train_steps
re-runs pretraining (which continues from its newest checkpoint) and what follows.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

from recipe.config import OLD_RUN_ADVICE, RecipeError
from recipe.run_folder import Run
from recipe.settings import STEP_NAMES, step_settings
from recipe.steps import STEPS, log
from utils.cli import UserError, os_error_message
from utils.fingerprint import FileFacts, fingerprint_files
from utils.procs import StageInterrupted
from utils.resume_record import (changed_inputs as changed_names, describe_input_change, make_record,
                                 output_entry, read_record, unmet, write_record)

# The inputs (outside the run folder) each step reads directly; a step also depends on
# everything the steps before it depended on (see depends_on).
STEP_INPUTS = {"sections": ("notes",), "vocab": ("vocab",), "tfrecords": ("init",), "pretrain": ("init",),
               "compare": ("reference",), "evaluate": ("eval_data",)}
# Settings a step's marker records: a changed value redoes the step, keeping its work
# (pretraining continues from its newest checkpoint). From the settings table's `redoes`.
STEP_SETTINGS = step_settings()
# Folders of a step's resumable partial work: removed when an input of the step changed.
STEP_WORK = {"notes": "notes", "sections": "text", "vocab": "vocab", "tfrecords": "tfrecords",
             "pretrain": "pretrain", "evaluate": "evaluate"}
ALWAYS_RUN = {"summary"}
# Inputs a rerun may leave out: results made with them are kept (a rerun without
# --reference does not discard the comparison), only a different one redoes the step.
OPTIONAL_INPUTS = {"reference", "eval_data"}


class RecipeInterrupted(UserError):
    """SIGINT/SIGTERM during a step: every process of the step was stopped."""

    exit_code = 130


def depends_on(step: str) -> list[str]:
    """The inputs a step's outputs derive from: its own and those of every earlier step."""
    names: list[str] = []
    for s in STEP_NAMES[: STEP_NAMES.index(step) + 1]:
        names += [n for n in STEP_INPUTS.get(s, ()) if n not in names]
    return names


# ----------------------------------------------------------------------------- inputs

def input_files(cfg: dict[str, Any]) -> dict[str, list[Path]]:
    """Every file outside the run folder that the run reads, by input name."""
    files: dict[str, list[Path]] = {}
    if cfg.get("notes"):
        files["notes"] = [Path(cfg["notes"])]
    if cfg.get("vocab"):
        files["vocab"] = [Path(cfg["vocab"])]
    if cfg.get("init"):
        init = cfg["init"]
        prefix = Path(init["prefix"])
        files["init"] = sorted(prefix.parent.glob(prefix.name + ".data-*")) + [
            Path(init["prefix"] + ".index"), Path(init["bert_config_file"]), Path(init["vocab_file"])]
    if cfg.get("reference"):
        files["reference"] = _model_files(Path(cfg["reference"]))
    if cfg.get("eval_data"):
        files["eval_data"] = sorted(p for p in Path(cfg["eval_data"]).glob("*/*")
                                    if p.is_file() and not p.parent.name.startswith("."))
    return files


def _model_files(path: Path) -> list[Path]:
    """An HF folder's files, or a TF checkpoint's files plus the config/vocab beside it."""
    if path.is_dir():
        from bert.checkpoint_map import resolve_checkpoint
        if (path / "config.json").is_file():
            return sorted(p for p in path.iterdir() if p.is_file())
        path = Path(resolve_checkpoint(path))
    beside = [path.parent / n for n in ("bert_config.json", "vocab.txt") if (path.parent / n).is_file()]
    return sorted(path.parent.glob(path.name + ".*")) + beside


def current_inputs(cfg: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Fingerprints (size, mtime, sha256) of every input; hashes come from the cache while
    a file's size and mtime are unchanged, so a big file is hashed once."""
    files = input_files(cfg)
    facts = FileFacts()
    total = sum(p.stat().st_size for paths in files.values() for p in paths)
    t0 = time.monotonic()
    inputs = {name: fingerprint_files(paths, facts) for name, paths in files.items()}
    if time.monotonic() - t0 > 2:
        log(f"fingerprinted the inputs ({total / 1e9:.2f} GB) in {time.monotonic() - t0:.0f} s; "
            f"hashes cached in {facts.file}")
    return inputs


# ----------------------------------------------------------------------------- markers

def marker_kind(step: str) -> str:
    """The resume-record kind of a step's marker."""
    return f"recipe.{step}"


def write_marker(run: Run, step: str, record: dict[str, Any]) -> None:
    """A read-only or full run folder is one line naming the folder, not a traceback."""
    try:
        write_record(run.marker(step), record)
    except OSError as exc:
        raise RecipeError(os_error_message(exc, f"cannot write the marker of step {step}")) from None


def read_marker(run: Run, step: str) -> dict[str, Any] | None:
    """The step's marker; None when absent or damaged (the step is not done). A marker
    of an older format is refused (utils.resume_record.OldRecordError, one line)."""
    return read_record(run.marker(step), OLD_RUN_ADVICE)


def _settings(run: Run, step: str) -> dict[str, Any]:
    return {k: run.cfg.get(k) for k in STEP_SETTINGS.get(step, ())}


def step_inputs(step: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The current fingerprints of the inputs `step` depends on (see depends_on)."""
    return {n: inputs.get(n) for n in depends_on(step)}


def _recorded_inputs(run: Run, step: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What the marker keeps: the current inputs; an optional one left out this time keeps
    the value of the previous marker (its results are still there)."""
    previous = (read_marker(run, step) or {}).get("inputs", {})
    return {n: previous.get(n) if n in OPTIONAL_INPUTS and fp is None else fp
            for n, fp in step_inputs(step, inputs).items()}


def _output_entries(run: Run, step: str, paths: list[str]) -> list[dict[str, Any]]:
    """Each output's path (relative to the run folder), size and sha256 (from the
    fingerprint cache when the stage already hashed it, e.g. the TFRecords)."""
    facts = FileFacts()
    try:
        return [output_entry(p, run.dir, facts=facts) for p in paths]
    except OSError as exc:
        raise RecipeError(os_error_message(exc, f"cannot read an output of step {step}")) from None


def changed_inputs(record: dict[str, Any], step: str, inputs: dict[str, Any]) -> list[str]:
    """Names of the inputs of `step` whose content changed since its marker was written."""
    return changed_names(record.get("inputs", {}), step_inputs(step, inputs), OPTIONAL_INPUTS)


def is_done(run: Run, step: str, inputs: dict[str, Any]) -> bool:
    """The step's marker is "done" and meets the one resume rule (module docstring)."""
    record = read_marker(run, step)
    return (record is not None and record.get("status") == "done"
            and unmet(record, kind=marker_kind(step), settings=_settings(run, step),
                      inputs=step_inputs(step, inputs), folder=run.dir,
                      optional_inputs=OPTIONAL_INPUTS) is None)


def invalidate_changed_inputs(run: Run, inputs: dict[str, Any]) -> None:
    """The first step (in recipe order) whose marker was made from other inputs, and every
    step after it, lose their markers and partial work, and the log says why."""
    for i, step in enumerate(STEP_NAMES):
        record = read_marker(run, step)
        changed = changed_inputs(record, step, inputs) if record else []
        if not changed:
            continue
        why = "; ".join(f"{n}: {describe_input_change(record.get('inputs', {}).get(n), inputs.get(n))}"
                        for n in changed)
        log(f"input changed since step {step} ran ({why}): redoing {step} and every step after it")
        for later in STEP_NAMES[i:]:
            run.marker(later).unlink(missing_ok=True)
            work = run.dir / STEP_WORK[later] if later in STEP_WORK else None
            if work is not None and work.exists() and not (later == "notes" and run.cfg.get("notes")):
                shutil.rmtree(work)
                log(f"removed {work.relative_to(run.dir)}/ (made from the old input)")
        return


# ----------------------------------------------------------------------------- extension

def trained_step(run: Run) -> int | None:
    """Global step of the newest checkpoint in the run's pretrain folder; None if none."""
    from bert.checkpoint_map import CheckpointError, resolve_checkpoint

    if not run.model_dir.is_dir():
        return None
    try:
        prefix = resolve_checkpoint(run.model_dir)
    except CheckpointError:
        return None
    m = re.search(r"-(\d+)$", prefix)
    return int(m.group(1)) if m else None


def check_extension(run: Run, old: dict[str, Any]) -> None:
    """num_train_steps may be raised (training continues) but not lowered below the step
    already trained."""
    before, now = old.get("num_train_steps"), run.cfg["num_train_steps"]
    if before == now:
        return
    step = trained_step(run)
    if step is not None and now < step:
        raise RecipeError(f"--num_train_steps {now} is below the step already trained in {run.model_dir} "
                          f"({step}); give at least {step}, or use a new --run_dir")
    if step is not None:
        # FAITHFUL: Google's run_pretraining builds the polynomial decay from the
        # num_train_steps it is given, so a restart with a new total follows the new
        # schedule from the restored global step on.
        log(f"num_train_steps {before} -> {now}: pretraining continues from step {step}; the "
            f"learning-rate schedule is now the one of {now} steps (linear decay to 0 at step {now}, "
            "warm-up unchanged), as Google's code computes it on a restart")
    else:
        log(f"num_train_steps {before} -> {now} (no checkpoint yet)")


# ----------------------------------------------------------------------------- running

def run_steps(run: Run, steps: list[str], inputs: dict[str, Any]) -> None:
    """Run `steps` in order, skipping finished ones until one runs; every later one runs too."""
    rerun_rest = False
    for i, step in enumerate(steps, 1):
        head = f"[{i}/{len(steps)}] {step}"
        if step not in ALWAYS_RUN and not rerun_rest and is_done(run, step, inputs):
            log(f"{head}: complete, skipped (marker {run.marker(step).relative_to(run.dir)})")
            continue
        log(f"{head}: running")
        kind, settings = marker_kind(step), _settings(run, step)
        recorded = _recorded_inputs(run, step, inputs)
        write_marker(run, step, make_record(kind, settings=settings, inputs=recorded, step=step, status="started"))
        t0 = time.monotonic()
        try:
            result = STEPS[step](run)
        except StageInterrupted as exc:
            raise RecipeInterrupted(f"interrupted ({exc}) during step {step}; every process of the step "
                                    "was stopped; rerun the same command to resume") from None
        seconds = time.monotonic() - t0
        if result is None:
            log(f"{head}: nothing to do in this configuration")
            result = {"outputs": []}
        counts = {k: v for k, v in result.items() if k != "outputs"}
        write_marker(run, step, make_record(
            kind, settings=settings, inputs=recorded, outputs=_output_entries(run, step, result["outputs"]),
            counts=counts, step=step, status="done", seconds=round(seconds, 1),
            finished=time.strftime("%Y-%m-%dT%H:%M:%S")))
        rerun_rest = rerun_rest or step not in ALWAYS_RUN
        log(f"{head}: done in {seconds:.1f} s")
