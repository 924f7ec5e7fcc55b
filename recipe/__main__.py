"""Entry point of run_pretraining.sh: `python -m recipe [--demo | --notes F --init DIR|scratch] ...`.

Order matters: every setting and input is validated before anything is written (a typo
costs seconds and creates no run folder); then the run folder is locked for the whole
run, a killed run's temporaries are removed, the configuration is checked against the
folder's, and the steps run.
"""
from __future__ import annotations

import sys
from pathlib import Path

from recipe.config import (RecipeError, check_same_settings, default_run_dir, effective_config, lock_run_dir,
                           read_config, resolve_path, selected_steps)
from recipe.settings import build_parser
from recipe.runner import check_extension, current_inputs, invalidate_changed_inputs, run_steps
from recipe.run_folder import Run
from recipe.steps import log
from recipe.validate import validate
from utils.atomic import remove_stale_temps
from utils.cli import os_error_message, run_main
from utils.runlock import FolderLock

PROG = "run_pretraining.sh"


# The folders the stages write in a run folder: where a killed run's temporaries can be.
STAGE_FOLDERS = ("notes", "text", "vocab", "tfrecords", "pretrain", "huggingface", "compare", "evaluate")


def make_run_dir(cfg: dict, run_dir_arg: str | None) -> Path:
    """The run folder, created if needed. An existing folder must be a run folder or empty:
    a typo'd --run_dir pointing at a folder of other files must not be filled with a run."""
    run_dir = Path(resolve_path(run_dir_arg)) if run_dir_arg else default_run_dir(cfg)
    if run_dir.exists() and not run_dir.is_dir():
        raise RecipeError(f"--run_dir {run_dir}: exists and is not a folder")
    if run_dir.is_dir() and not (run_dir / "config.json").exists():
        others = sorted(p.name for p in run_dir.iterdir() if p.name not in (".lock", ".steps"))
        if others:
            raise RecipeError(f"--run_dir {run_dir}: not empty and not a run folder (no config.json; holds "
                              f"{', '.join(others[:3])}{' ...' if len(others) > 3 else ''}); give a new or "
                              "empty folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecipeError(os_error_message(exc, "cannot create the run folder")) from None
    return run_dir


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    steps = selected_steps(args.steps)
    cfg = effective_config(args)
    validate(cfg)
    run_dir = make_run_dir(cfg, args.run_dir)
    with FolderLock(run_dir) as lock:
        removed = remove_stale_temps(run_dir) + [
            p for sub in STAGE_FOLDERS for p in remove_stale_temps(run_dir / sub, recursive=True)]
        if removed:
            log(f"removed {len(removed)} temporary file(s) a killed run left: "
                + ", ".join(str(p.relative_to(run_dir)) for p in removed[:10])
                + (" ..." if len(removed) > 10 else ""))
        run = Run(run_dir, cfg, lock.fd)
        old = read_config(run_dir)
        if old is not None:
            check_same_settings(run_dir, old, cfg)
            check_extension(run, old)
        inputs = current_inputs(cfg)
        lock_run_dir(run_dir, cfg)
        log(f"run folder {run_dir} ({cfg['mode']}, corpus {cfg['corpus']}, init {cfg['init_kind']}); "
            f"config in {run_dir / 'config.json'}")
        invalidate_changed_inputs(run, inputs)
        run_steps(run, steps, inputs)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(PROG, main))
