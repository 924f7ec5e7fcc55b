"""Fine-tune and score one Hugging Face BERT folder on MedNLI or a CoNLL NER task.

    python -m downstream_tasks.run --task mednli|ner --data_dir DIR --model HF_DIR \
        --output_dir OUT [--preset robust|paper] [--seeds 1,2,3,4,5] [--max_steps N]

`--data_dir` holds mli_{train,dev,test}_v1.jsonl (MedNLI) or train.tsv, dev.tsv, test.tsv
(NER, two-column CoNLL). Presets:
  robust (default)  one fixed setting per task, every seed: test mean +- sd over seeds
  paper             the original grid (MedNLI: epochs {3,4,5}, NER: {2,3,4}; lr {2e-5,3e-5,
                    5e-5}; batch {16,32}), model after the last epoch, for each seed the
                    best-dev setting's test score (default seed: 1)
Writes OUT/results.json, OUT/predictions_test_seed<S>.tsv and OUT/log.txt. Each finished
(setting, seed) is kept in OUT/units/, so a killed run resumes where it stopped; a rerun
with other settings in the same folder is refused.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence, TextIO

from absl import flags

from downstream_tasks import tasks, training
from downstream_tasks.training import Setting
from utils.atomic import atomic_path, remove_stale_temps, write_json_atomic
from utils.cli import UsageError, UserError, absl_run, os_error_message
from utils.fingerprint import sha256_file
from utils.resume_record import settings_mismatch

_LRS, _BATCHES = (2e-5, 3e-5, 5e-5), (16, 32)
PRESETS: dict[str, dict[str, list[Setting]]] = {
    # One setting per task, used for every seed by both compared models.
    "robust": {"mednli": [Setting(4, 2e-5, 16)], "ner": [Setting(4, 5e-5, 32)]},
    # FAITHFUL: the paper's grids (Alsentzer et al. 2019, section 4).
    "paper": {"mednli": [Setting(e, lr, b) for e, lr, b in itertools.product((3, 4, 5), _LRS, _BATCHES)],
              "ner": [Setting(e, lr, b) for e, lr, b in itertools.product((2, 3, 4), _LRS, _BATCHES)]},
}
DEFAULT_SEEDS = {"robust": (1, 2, 3, 4, 5), "paper": (1,)}


class RunError(UserError):
    """A run that cannot start (bad flags, a folder holding another run)."""


class Tee:
    """A text stream writing to stderr and to the run's log file."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a", encoding="utf-8")

    def write(self, text: str) -> int:
        sys.stderr.write(text)
        self.file.write(text)
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def parse_seeds(text: str | None, preset: str) -> list[int]:
    if not text:
        return list(DEFAULT_SEEDS[preset])
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: expected comma-separated integers, e.g. 1,2,3,4,5") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise UsageError(f"--seeds {text!r}: expected distinct non-negative integers")
    return seeds


def fingerprint(folder: str | os.PathLike) -> dict[str, Any]:
    """Content hash of a model folder's config, vocabulary and weights (sha256, streamed)."""
    folder = Path(folder)
    names = [n for n in ("config.json", "vocab.txt", "model.safetensors", "pytorch_model.bin")
             if (folder / n).is_file()]
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return {"sha256": digest.hexdigest(), "files": names}


def run_config(task: str, name: str, data_files: dict[str, Path], model_dir: Path, preset: str,
               settings: list[Setting], max_steps: int | None) -> dict[str, Any]:
    """What decides the results of a run folder (a rerun must match it to resume)."""
    return {"task": task, "name": name,
            "model": {"path": str(model_dir), **fingerprint(model_dir)},
            "data": {split: {"path": str(p), "sha256": sha256_file(p)} for split, p in data_files.items()},
            "preset": preset, "grid": [s.__dict__ for s in settings], "max_steps": max_steps,
            "max_length": tasks.MAX_LENGTH, "do_lower_case": False,
            "warmup_fraction": training.WARMUP_FRACTION}


def claim_output_dir(out: Path, config: dict[str, Any]) -> None:
    """Create `out`, remove temps a killed run left, and refuse a folder of another run."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "units").mkdir(exist_ok=True)
    except OSError as e:
        raise RunError(os_error_message(e, "cannot create the output folder")) from None
    if not os.access(out, os.W_OK):
        raise RunError(f"{out}: output folder is not writable")
    remove_stale_temps(out, recursive=True)
    path = out / "run_config.json"
    if path.is_file():
        import json
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RunError(f"{path}: unreadable ({e}); use a new --output_dir") from None
        message = settings_mismatch(out, old if isinstance(old, dict) else {}, config, "use a new --output_dir")
        if message:
            raise RunError(message)
    else:
        write_json_atomic(path, config)


def run_unit(task, tokenizer, model_dir: Path, setting: Setting, seed: int, out: Path,
             device, max_steps: int | None, allow_pickle: bool, log: TextIO) -> dict[str, Any]:
    """Fine-tune once (one setting, one seed) and score dev and test; cached in units/."""
    import json
    unit = out / "units" / f"{setting.key}_seed{seed}.json"
    predictions = unit.with_suffix(".test.tsv")
    if unit.is_file() and predictions.is_file():
        return json.loads(unit.read_text(encoding="utf-8"))
    label = f"{task.name} {setting.key} seed {seed}"
    print(f"{label}: fine-tuning on {len(task.splits['train'])} train items", file=log, flush=True)
    start = time.monotonic()
    training.set_seed(seed)
    model = training.load_model(model_dir, task.name, len(task.labels), allow_pickle)
    trained = training.fine_tune(model, task.examples(tokenizer, "train"), setting, seed, device,
                                 max_steps, log, label)
    dev, _ = task.evaluate(model, tokenizer, "dev", device, log)
    test, predicted = task.evaluate(model, tokenizer, "test", device, log)
    task.write_predictions(predictions, "test", predicted)
    result = {"seed": seed, "setting": setting.__dict__, "dev": dev, "test": test, **trained,
              "seconds": round(time.monotonic() - start, 1)}
    write_json_atomic(unit, result)
    print(f"{label}: dev {tasks.describe(dev, task.metric)}, test {tasks.describe(test, task.metric)} "
          f"({result['seconds']} s)", file=log, flush=True)
    return result


def best_by_dev(units: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The unit with the best dev score (ties: the earliest in grid order)."""
    return max(units, key=lambda u: u["dev"][metric])  # max() keeps the first of equal ones


def evaluate(task_kind: str, data_dir: str | os.PathLike, model_dir: str | os.PathLike,
             output_dir: str | os.PathLike, preset: str = "robust", seeds: Sequence[int] | None = None,
             max_steps: int | None = None, device_name: str = "auto", allow_pickle: bool = False,
             name: str | None = None) -> dict[str, Any]:
    """The whole run; returns what results.json holds."""
    if task_kind not in ("mednli", "ner"):
        raise UsageError(f"--task {task_kind!r}: expected mednli or ner")
    if preset not in PRESETS:
        raise UsageError(f"--preset {preset!r}: expected robust or paper")
    if max_steps is not None and max_steps < 1:
        raise UsageError(f"--max_steps {max_steps}: must be at least 1")
    seeds = list(seeds) if seeds else list(DEFAULT_SEEDS[preset])
    model_dir, out = Path(model_dir).resolve(), Path(output_dir).resolve()
    task = tasks.load_task(task_kind, data_dir)  # every data file is read (and checked) first
    if not model_dir.is_dir():
        raise training.ModelError(f"{model_dir}: model folder not found")
    tokenizer = training.load_tokenizer(model_dir)
    if not (model_dir / "model.safetensors").is_file() and not allow_pickle:
        training.load_model(model_dir, task_kind, len(task.labels), allow_pickle)  # raises the pickle error
    device = training.pick_device(device_name)
    name = name or tasks.task_name(task_kind, data_dir)
    settings = PRESETS[preset][task_kind]
    config = run_config(task_kind, name, task.files, model_dir, preset, settings, max_steps)
    claim_output_dir(out, config)
    try:
        log = Tee(out / "log.txt")
    except OSError as e:
        raise RunError(os_error_message(e, "cannot write the log")) from None
    try:
        print(f"{name}: {preset} preset, {len(settings)} setting(s) x seeds {seeds} on {device}; "
              f"data {task.counts()}", file=log, flush=True)
        runs = []
        for seed in seeds:
            units = [run_unit(task, tokenizer, model_dir, s, seed, out, device, max_steps,
                              allow_pickle, log) for s in settings]
            chosen = best_by_dev(units, task.metric)
            source = out / "units" / f"{Setting(**chosen['setting']).key}_seed{seed}.test.tsv"
            with atomic_path(out / f"predictions_test_seed{seed}.tsv") as tmp:
                shutil.copyfile(source, tmp)
            runs.append({"seed": seed, "setting": chosen["setting"], "dev": chosen["dev"],
                         "test": chosen["test"], "steps": chosen["steps"],
                         "grid": [{"setting": u["setting"], "dev": u["dev"][task.metric]} for u in units]
                         if len(units) > 1 else None})
        results = summarise(config, runs, task.metric, seeds, device)
        write_json_atomic(out / "results.json", results)
        print(f"{name}: test {task.metric} {results['test_mean']:.2f} +- {results['test_sd']:.2f} "
              f"over {len(runs)} seed(s); wrote {out / 'results.json'}", file=log, flush=True)
        return results
    except OSError as e:  # a full or read-only disk while writing outputs: one line
        raise RunError(os_error_message(e, "cannot write")) from None
    finally:
        log.close()


def summarise(config: dict[str, Any], runs: list[dict[str, Any]], metric: str, seeds: Sequence[int],
              device) -> dict[str, Any]:
    import torch
    import transformers
    scores = [r["test"][metric] for r in runs]
    return {"task": config["task"], "name": config["name"], "metric": metric, "model": config["model"],
            "settings": {"preset": config["preset"], "grid": config["grid"], "seeds": list(seeds),
                         "max_steps": config["max_steps"], "max_length": config["max_length"],
                         "do_lower_case": False, "warmup_fraction": config["warmup_fraction"],
                         "device": str(device), "torch": torch.__version__,
                         "transformers": transformers.__version__, "python": platform.python_version()},
            "data": config["data"], "runs": runs,
            "test_mean": statistics.fmean(scores),
            # sample standard deviation over seeds (0 for a single seed)
            "test_sd": statistics.stdev(scores) if len(scores) > 1 else 0.0}


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise UsageError(f"unexpected argument(s): {' '.join(argv[1:])}")
    F = flags.FLAGS
    for flag in ("task", "data_dir", "model", "output_dir"):
        if not getattr(F, flag):
            raise UsageError(f"--{flag} is required")
    evaluate(F.task, F.data_dir, F.model, F.output_dir, F.preset, parse_seeds(F.seeds, F.preset),
             F.max_steps, F.device, F.allow_pickle_i_trust_this_code, F.name)


def define_flags() -> None:
    flags.DEFINE_enum("task", None, ["mednli", "ner"], "Task kind: mednli (accuracy) or ner (span F1).")
    flags.DEFINE_string("data_dir", None, "Folder with mli_{train,dev,test}_v1.jsonl (mednli) or "
                        "train.tsv, dev.tsv, test.tsv (ner).")
    flags.DEFINE_string("model", None, "Hugging Face BERT folder (config.json, model.safetensors, vocab.txt).")
    flags.DEFINE_string("output_dir", None, "Run folder: results.json, predictions, log.txt, units/.")
    flags.DEFINE_enum("preset", "robust", list(PRESETS), "robust: one setting x seeds (mean +- sd); "
                      "paper: the original grid, best dev setting's test score.")
    flags.DEFINE_string("seeds", None, "Comma-separated seeds (default 1,2,3,4,5 robust, 1 paper).")
    flags.DEFINE_integer("max_steps", None, "Cap on training steps per fine-tuning (smoke runs).")
    flags.DEFINE_string("device", "auto", "auto (a GPU when present), cpu or cuda.")
    flags.DEFINE_string("name", None, "Task name in reports (default: mednli, or the data folder's name).")
    flags.DEFINE_boolean("allow_pickle_i_trust_this_code", False, "Load pytorch_model.bin (a pickle: "
                         "loading it can run code) when the folder has no model.safetensors.")


if __name__ == "__main__":
    define_flags()
    absl_run("downstream_tasks.run", main)
