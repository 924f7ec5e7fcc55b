"""Paired comparison of two evaluation runs (e.g. our export A vs the published model B).

    python -m downstream_tasks.compare RUN_A RUN_B [--output_dir OUT] [--margin_accuracy 1.0]
        [--margin_f1 0.5] [--bootstrap 2000]

RUN_A / RUN_B are `downstream_tasks.run` output folders, or folders holding several of
them (one per task); tasks are paired by name. Per task: the test-score difference A - B
(mean over the shared seeds), a bootstrap 95% interval, and a verdict: `equivalent` when
the interval's lower bound is above -margin (1.0 accuracy point for MedNLI, 0.5 F1 for
NER), else `not equivalent`.

The bootstrap is paired twice over. Each replicate draws the test examples with
replacement (NER: whole sentences, as an entity never crosses one), the same draw for A
and B; and draws the seeds with replacement, again the same draw for both (seed s
fine-tunes A and B with the same data order and head initialisation). The replicate's
statistic is mean over drawn seeds of [metric_A - metric_B] recomputed on the drawn
examples (F1 from the summed entity counts, not averaged per sentence), so the interval
carries both the finite test set and fine-tuning's seed-to-seed variation; its bounds are
the 2.5th and 97.5th percentiles.

Writes OUT/comparison.md (a table like the paper's Table 2 with the published numbers
beside), OUT/comparison.json and OUT/per_seed_scores.png.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from absl import flags

from downstream_tasks import data, scorer
from utils.atomic import atomic_path, write_json_atomic, write_text_atomic
from utils.cli import UsageError, UserError, absl_run, os_error_message

# Alsentzer et al. 2019, Table 2 (test sets). The arXiv v1 MedNLI 84-85 were dev numbers.
PUBLISHED_MODELS = ("Bio+Clinical BERT", "BioBERT", "BERT-Base cased")
PUBLISHED = {"mednli": (82.7, 80.8, 77.6), "i2b2_2006": (94.7, 94.8, 93.9), "i2b2_2010": (87.2, 86.5, 83.5),
             "i2b2_2012": (78.9, 78.9, 75.9), "i2b2_2014": (92.5, 93.0, 92.8)}


class CompareError(UserError):
    """Runs that cannot be compared (missing results, other test data, no shared seed)."""


def find_runs(folder: str | os.PathLike) -> dict[str, Path]:
    """{task name: run folder} of a run folder or of a folder of run folders."""
    folder = Path(folder)
    if (folder / "results.json").is_file():
        candidates = [folder]
    elif folder.is_dir():
        candidates = sorted(p for p in folder.iterdir() if (p / "results.json").is_file())
    else:
        raise CompareError(f"{folder}: not found")
    if not candidates:
        raise CompareError(f"{folder}: no results.json in it or its sub-folders "
                           "(a downstream_tasks.run output folder, or a folder of them)")
    return {read_results(p)["name"]: p for p in candidates}


def read_results(run: Path) -> dict[str, Any]:
    path = run / "results.json"
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CompareError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
    for key in ("name", "task", "metric", "runs", "data"):
        if key not in obj:
            raise CompareError(f"{path}: field {key!r} missing (not written by downstream_tasks.run?)")
    return obj


def per_example_stats(run: Path, task: str, seed: int) -> np.ndarray:
    """(examples, k) statistics of one seed's test predictions: [correct] for MedNLI,
    [true positives, predicted, gold entities] per sentence for NER."""
    path = run / f"predictions_test_seed{seed}.tsv"
    if not path.is_file():
        raise CompareError(f"{path}: predictions file missing")
    if task == "mednli":
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line]
        if any(len(r) != 3 for r in rows):
            raise CompareError(f"{path}: expected pairID, gold and predicted label on every line")
        return np.array([[r[1] == r[2]] for r in rows], dtype=np.float64)
    gold, predicted = data.read_predictions(path)
    return np.array([scorer.sentence_counts(g, p) for g, p in zip(gold, predicted)], dtype=np.float64)


def metric_of(stats: np.ndarray, task: str) -> np.ndarray:
    """Metric (percent) from summed statistics (..., k)."""
    if task == "mednli":
        return 100.0 * stats[..., 0]
    tp, n_pred, n_gold = stats[..., 0], stats[..., 1], stats[..., 2]
    denom = n_pred + n_gold
    return np.where(denom > 0, 200.0 * tp / np.where(denom > 0, denom, 1), 0.0)


def bootstrap_differences(a: np.ndarray, b: np.ndarray, task: str, replicates: int,
                          seed: int) -> np.ndarray:
    """Bootstrap replicates of mean_seeds(metric_A - metric_B); `a`, `b` are (seeds, examples, k)."""
    rng = np.random.default_rng(seed)
    n_seeds, n = a.shape[:2]
    scale = 1.0 / n if task == "mednli" else 1.0  # accuracy is a mean, counts are sums
    out = []
    for start in range(0, replicates, 250):
        m = min(250, replicates - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=m).astype(np.float64)  # (m, n)
        seeds = rng.integers(0, n_seeds, size=(m, n_seeds))
        diff = (metric_of(np.einsum("snk,mn->msk", a, weights) * scale, task)
                - metric_of(np.einsum("snk,mn->msk", b, weights) * scale, task))  # (m, seeds)
        out.append(np.take_along_axis(diff, seeds, axis=1).mean(axis=1))
    return np.concatenate(out)


def compare_task(name: str, run_a: Path, run_b: Path, margins: dict[str, float], replicates: int,
                 seed: int) -> dict[str, Any]:
    ra, rb = read_results(run_a), read_results(run_b)
    task = ra["task"]
    if rb["task"] != task:
        raise CompareError(f"{name}: {run_a} is a {task} run but {run_b} a {rb['task']} run")
    if ra["data"]["test"]["sha256"] != rb["data"]["test"]["sha256"]:
        raise CompareError(f"{name}: {run_a} and {run_b} were scored on different test files "
                           f"({ra['data']['test']['path']} vs {rb['data']['test']['path']})")
    setting_keys = ("preset", "grid", "max_steps", "max_length")
    sa, sb = ({k: r.get("settings", {}).get(k) for k in setting_keys} for r in (ra, rb))
    if sa != sb:
        differ = [k for k in setting_keys if sa[k] != sb[k]]
        raise CompareError(f"{name}: {run_a} and {run_b} ran with different settings ({', '.join(differ)}): "
                           "a fair comparison runs both models under the same preset and --max_steps")
    seeds_a = [r["seed"] for r in ra["runs"]]
    seeds_b = {r["seed"] for r in rb["runs"]}
    seeds = [s for s in seeds_a if s in seeds_b]
    if not seeds:
        raise CompareError(f"{name}: no seed in common ({seeds_a} vs {sorted(seeds_b)}): a paired "
                           "comparison needs both runs on the same --seeds")
    a = np.stack([per_example_stats(run_a, task, s) for s in seeds])
    b = np.stack([per_example_stats(run_b, task, s) for s in seeds])
    if a.shape != b.shape:
        raise CompareError(f"{name}: prediction files of {run_a} and {run_b} differ in length")
    n = a.shape[1]
    scale = 1.0 / n if task == "mednli" else 1.0
    per_seed_a = metric_of(a.sum(axis=1) * scale, task)
    per_seed_b = metric_of(b.sum(axis=1) * scale, task)
    diffs = bootstrap_differences(a, b, task, replicates, seed)
    low, high = (float(x) for x in np.percentile(diffs, [2.5, 97.5]))
    margin = margins[task]
    return {"name": name, "task": task, "metric": ra["metric"], "seeds": seeds,
            "unpaired_seeds": sorted(set(seeds_a) ^ seeds_b), "test_examples": n,
            "a": {"run": str(run_a), "model": ra["model"]["path"], "per_seed": per_seed_a.tolist(),
                  "mean": float(per_seed_a.mean()), "sd": _sd(per_seed_a)},
            "b": {"run": str(run_b), "model": rb["model"]["path"], "per_seed": per_seed_b.tolist(),
                  "mean": float(per_seed_b.mean()), "sd": _sd(per_seed_b)},
            "difference": float(per_seed_a.mean() - per_seed_b.mean()), "ci95": [low, high],
            "bootstrap_replicates": replicates, "margin": margin,
            "verdict": "equivalent" if low > -margin else "not equivalent",
            "published": published_for(name)}


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def published_for(name: str) -> dict[str, float] | None:
    """The paper's Table 2 numbers for a task name (mednli, i2b2_2006 ... or a name with the year)."""
    key = name if name in PUBLISHED else next((k for k in PUBLISHED if k[-4:].isdigit() and k[-4:] in name), None)
    return dict(zip(PUBLISHED_MODELS, PUBLISHED[key])) if key else None


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A table like the paper's Table 2, our paired comparison beside the published numbers."""
    head = ("| task | metric | " + " | ".join(f"published {m}" for m in PUBLISHED_MODELS)
            + " | A mean ± sd | B mean ± sd | A − B [95% CI] | margin | verdict |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        pub = r["published"] or {}
        lines.append(f"| {r['name']} | {r['metric']} | "
                     + " | ".join(f"{pub[m]:.1f}" if m in pub else "-" for m in PUBLISHED_MODELS)
                     + f" | {r['a']['mean']:.2f} ± {r['a']['sd']:.2f} | {r['b']['mean']:.2f} ± {r['b']['sd']:.2f}"
                     f" | {r['difference']:+.2f} [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] | {r['margin']:g}"
                     f" | {r['verdict']} |")
    a, b = rows[0]["a"]["model"], rows[0]["b"]["model"]
    notes = [f"A: `{a}`", f"B: `{b}`",
             f"Seeds: {', '.join(str(s) for s in rows[0]['seeds'])}; scores in percent on the test sets; "
             "the interval is a paired bootstrap over test examples and seeds."]
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """PNG: each task's per-seed test scores of A and B (paired by seed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows) + 1, 3.6), squeeze=False)
    for ax, r in zip(axes[0], rows):
        x = np.arange(len(r["seeds"]))
        for side, color, offset in (("a", "tab:blue", -0.08), ("b", "tab:orange", 0.08)):
            ax.plot(x + offset, r[side]["per_seed"], "o", color=color, label=f"{side.upper()}")
            ax.axhline(r[side]["mean"], color=color, linestyle="--", linewidth=0.8)
        for i in x:
            ax.plot([i - 0.08, i + 0.08], [r["a"]["per_seed"][i], r["b"]["per_seed"][i]], color="grey", lw=0.6)
        ax.set_xticks(x, [str(s) for s in r["seeds"]])
        ax.set_xlabel("seed")
        ax.set_ylabel(f"test {r['metric']} (%)")
        ax.set_title(f"{r['name']}: {r['verdict']}", fontsize=9)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def compare(run_a: str | os.PathLike, run_b: str | os.PathLike, output_dir: str | os.PathLike | None = None,
            margin_accuracy: float = 1.0, margin_f1: float = 0.5, replicates: int = 2000,
            seed: int = 0) -> dict[str, Any]:
    """Compare every task both folders hold; write the outputs when `output_dir` is given."""
    if replicates < 100:
        raise UsageError(f"--bootstrap {replicates}: use at least 100 replicates")
    if margin_accuracy < 0 or margin_f1 < 0:
        raise UsageError("--margin_accuracy and --margin_f1 must be >= 0")
    runs_a, runs_b = find_runs(run_a), find_runs(run_b)
    names = [n for n in runs_a if n in runs_b]
    if not names:
        raise CompareError(f"no task in common: {run_a} has {sorted(runs_a)}, {run_b} has {sorted(runs_b)}")
    margins = {"mednli": margin_accuracy, "ner": margin_f1}
    rows = [compare_task(n, runs_a[n], runs_b[n], margins, replicates, seed) for n in names]
    report = {"tasks": rows, "only_in_a": sorted(set(runs_a) - set(names)),
              "only_in_b": sorted(set(runs_b) - set(names))}
    report["markdown"] = markdown(rows)
    if output_dir is not None:
        out = Path(output_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out / "comparison.md", report["markdown"])
            write_json_atomic(out / "comparison.json", {k: v for k, v in report.items() if k != "markdown"})
            plot(rows, out / "per_seed_scores.png")
        except OSError as e:
            raise CompareError(os_error_message(e, "cannot write")) from None
    return report


def main(argv: Sequence[str]) -> None:
    if len(argv) != 3:
        raise UsageError("expected two run folders: python -m downstream_tasks.compare RUN_A RUN_B [flags]")
    F = flags.FLAGS
    report = compare(argv[1], argv[2], F.output_dir, F.margin_accuracy, F.margin_f1, F.bootstrap,
                     F.bootstrap_seed)
    print(report["markdown"], end="")
    for side in ("only_in_a", "only_in_b"):
        if report[side]:
            print(f"note: not compared, {side.replace('_', ' ')}: {', '.join(report[side])}")


def define_flags() -> None:
    flags.DEFINE_string("output_dir", None, "Write comparison.md, comparison.json and per_seed_scores.png here.")
    flags.DEFINE_float("margin_accuracy", 1.0, "MedNLI: equivalent when the lower 95% bound of A - B "
                       "exceeds minus this many accuracy points.")
    flags.DEFINE_float("margin_f1", 0.5, "NER: equivalent when the lower 95% bound of A - B exceeds minus "
                       "this many F1 points.")
    flags.DEFINE_integer("bootstrap", 2000, "Bootstrap replicates.")
    flags.DEFINE_integer("bootstrap_seed", 0, "Seed of the bootstrap draws.")


if __name__ == "__main__":
    define_flags()
    absl_run("downstream_tasks.compare", main)
