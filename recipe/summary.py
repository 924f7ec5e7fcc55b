"""The run's final summary (summary.json + a table on stderr) and its training-curve PNG."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from recipe.run_folder import Run
from utils.atomic import atomic_path, write_json_atomic

CURVE_TAGS = ("loss", "learning_rate", "masked_lm_accuracy", "next_sentence_accuracy")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def read_eval_results(path: Path) -> dict[str, float]:
    """eval_results.txt: one `key = value` per line (Google's format)."""
    out: dict[str, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if " = " in line:
                k, v = line.split(" = ", 1)
                out[k.strip()] = float(v)
    return out


def read_scalars(model_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalar summaries (step, value) per tag from every TensorBoard event file under model_dir."""
    from utils.tf_quiet import import_tensorflow
    tf = import_tensorflow()
    from tensorflow.core.util import event_pb2

    series: dict[str, dict[int, float]] = {}
    for events in sorted(model_dir.rglob("events.out.tfevents*")):
        if "eval" in events.parent.name:
            continue
        for record in tf.data.TFRecordDataset(str(events)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                tag = value.tag.split("/")[-1]
                if tag not in CURVE_TAGS:
                    continue
                if value.HasField("simple_value"):
                    x = value.simple_value
                else:
                    x = float(tf.make_ndarray(value.tensor))
                series.setdefault(tag, {})[event.step] = x
    return {tag: sorted(points.items()) for tag, points in series.items()}


def plot_curves(series: dict[str, list[tuple[int, float]]], png: Path) -> bool:
    """Loss / accuracy / learning-rate curves, one panel each; False when nothing to plot."""
    tags = [t for t in CURVE_TAGS if series.get(t)]
    if not tags:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tags), figsize=(4 * len(tags), 3.2), squeeze=False)
    for ax, tag in zip(axes[0], tags):
        steps, values = zip(*series[tag])
        ax.plot(steps, values, lw=1.2)
        ax.set_title(tag.replace("_", " "))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True


def reference_verdict(report: dict[str, Any]) -> dict[str, Any]:
    """The headline of a compare_weights report against a published model."""
    weights = report.get("weights", {})
    return {
        "layers": {name: {k: layer.get(k) for k in ("n_tensors", "n_differing", "rel_l2")}
                   for name, layer in weights.get("layers", {}).items()},
        "differing_tensors": len(weights.get("differing", [])),
        "config_differences": report.get("config"),
        "vocab": report.get("vocab"),
        "text": report.get("text"),
    }


def evaluation_folders(evaluate_dir: Path) -> dict[str, dict[str, str | None]] | None:
    """Per downstream task, where the evaluate step left our results, the reference's and
    their comparison (downstream_tasks writes their content)."""
    if not evaluate_dir.is_dir():
        return None
    return {task.name: {kind: str(task / kind) if (task / kind).is_dir() else None
                        for kind in ("ours", "reference", "compare")}
            for task in sorted(evaluate_dir.iterdir()) if task.is_dir()} or None


def write_summary(run: Run) -> dict[str, Any]:
    """summary.json: what each step made (corpus counts, records, eval, export check,
    comparison, curves), and the same as a table on stderr."""
    sections = _read_json(run.text_dir / "manifest.json") or {}
    sidecars = [_read_json(p) for p in sorted(run.tfrecord_dir.glob("*.tfrecord.json"))]
    instances = sum((s or {}).get("counts", {}).get("instances", 0) for s in sidecars)
    eval_results = read_eval_results(run.model_dir / "eval_results.txt")
    export_check = _read_json(run.compare_dir / "export_vs_checkpoint.json")
    reference = _read_json(run.compare_dir / "vs_reference.json")
    png = run.dir / "training_curves.png"
    has_curves = plot_curves(read_scalars(run.model_dir), png) if run.model_dir.is_dir() else False
    summary = {
        "run_dir": str(run.dir),
        "corpus": {k: sections.get(k) for k in ("totals", "splitter") if k in sections} or None,
        "tfrecord_files": len(sidecars),
        "instances": instances,
        "global_step": int(eval_results.get("global_step", 0)) or None,
        "eval": eval_results or None,
        "export_dir": str(run.export_dir) if (run.export_dir / "config.json").exists() else None,
        "export_matches_checkpoint": None if export_check is None else export_check["check"]["passed"],
        "reference_comparison": None if reference is None else reference_verdict(reference),
        "training_curves": str(png) if has_curves else None,
        "evaluation": evaluation_folders(run.evaluate_dir),
    }
    write_json_atomic(run.dir / "summary.json", summary)
    print_summary(summary)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    lines = ["", "== clinicalBERT run summary =="]
    for key, value in summary.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"    {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {value}")
    print("\n".join(lines), file=sys.stderr, flush=True)
