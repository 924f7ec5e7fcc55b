"""The console commands that `pip install -e .` puts in the venv's bin/ (pyproject.toml,
[project.scripts]): `clinicalbert-section-split ARGS` is `python -m section_split ARGS`.

Each command runs its module as `__main__` (runpy), exactly as `python -m` does, rather
than calling a function of it: what a stage does only as the main module is kept (its
error convention around `main`; bert.run_pretraining quietens TensorFlow's start-up and
sets XLA flags before TensorFlow loads), and the spawned worker processes of a local
pool re-import the same module `python -m` would give them. Modules are named, not
imported, so utils still imports nothing of the project.
"""
from __future__ import annotations

import runpy
from typing import Callable


def _command(module: str) -> Callable[[], None]:
    """A console-script function that runs `python -m module` with this process's argv."""
    def run() -> None:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    run.__doc__ = f"`python -m {module}`"
    run.module = module  # type: ignore[attr-defined]  # read by tests/test_packaging.py
    return run


recipe = _command("recipe")
notes = _command("data_prep.notes")
synthetic_notes = _command("data_prep.synthetic_notes")
section_split = _command("section_split")
build_vocab = _command("bert.build_vocab")
create_pretraining_data = _command("bert.create_pretraining_data")
run_pretraining = _command("bert.run_pretraining")
launch_workers = _command("bert.launch_workers")
convert_to_hf = _command("bert.convert_to_huggingface")
convert_from_hf = _command("bert.convert_from_huggingface")
compare_weights = _command("bert.compare_weights")
fill_mask = _command("recipe.fill_mask")
downstream = _command("downstream_tasks.run")
downstream_compare = _command("downstream_tasks.compare")
downstream_synthetic = _command("downstream_tasks.synthetic")
i2b2 = _command("downstream_tasks.i2b2")
