"""Entry point of run_pretraining.sh: `python -m recipe [--demo | --notes F --init DIR] ...`."""
from __future__ import annotations

import sys
from pathlib import Path

from recipe.config import RecipeError, build_parser, default_run_dir, effective_config, lock_run_dir, selected_steps
from recipe.steps import Run, log, run_steps


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = effective_config(args)
        cfg["reference"] = args.reference
        run_dir = Path(args.run_dir or default_run_dir(cfg)).resolve()
        steps = selected_steps(args.steps)
        run_dir.mkdir(parents=True, exist_ok=True)
        lock_run_dir(run_dir, cfg)
        log(f"run folder {run_dir} ({cfg['mode']}, corpus {cfg['corpus']}, init {cfg['init_kind']}); "
            f"config in {run_dir / 'config.json'}")
        run_steps(Run(run_dir, cfg), steps)
    except RecipeError as e:
        print(f"run_pretraining.sh: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("run_pretraining.sh: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
