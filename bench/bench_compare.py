"""Benchmark the export / reverse / compare CLIs on a BERT-Base-sized checkpoint.

    python bench/bench_compare.py [--layers 12] [--workdir DIR]

Builds a random 768/12-layer/28996-token checkpoint with the pretraining heads (numpy,
written with `checkpoint_map.write_tf_checkpoint`), then times each CLI as a user runs it
(a fresh process, imports included) and prints wall time and peak RSS per step.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bert import checkpoint_map as cm

REPO = Path(__file__).resolve().parents[1]


def build_checkpoint(folder: Path, layers: int, vocab: Path | None) -> Path:
    config = {"vocab_size": 28996, "hidden_size": 768, "num_hidden_layers": layers,
              "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
              "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02}
    rng = np.random.default_rng(0)
    weights = {n: (rng.standard_normal(s, dtype=np.float32) * 0.02)
               for n, s in cm.expected_shapes(config).items()}
    folder.mkdir(parents=True)
    cm.write_tf_checkpoint(weights, folder / "model.ckpt-100")
    (folder / "bert_config.json").write_text(json.dumps(config))
    if vocab and vocab.is_file():
        (folder / "vocab.txt").write_bytes(vocab.read_bytes())
    else:
        (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                                    + [f"tok{i}" for i in range(28991)]) + "\n")
    (folder / "training_config.json").write_text(json.dumps({"do_lower_case": False}))
    return folder


def run(label: str, args: list[str]) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if r.returncode not in (0, 1):
        sys.exit(f"{label} failed:\n{r.stderr[-2000:]}")
    rss = f"{peak / 1024:.0f} MB" if peak > before else "<= previous peak"
    print(f"{label:<46} {wall:7.1f} s   peak RSS {rss}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--workdir", default=None)
    p.add_argument("--vocab", default=str(REPO.parent / "shared/data/vocab/bert-base-cased-vocab.txt"))
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        ckpt = build_checkpoint(tmp / "tf", a.layers, Path(a.vocab))
        size = sum(f.stat().st_size for f in ckpt.iterdir()) / 2**20
        print(f"built {a.layers}-layer BERT-Base-shaped checkpoint ({size:.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        run("convert_to_huggingface (--verify=false)",
            ["bert.convert_to_huggingface", f"--tf_checkpoint={ckpt}", f"--output_dir={tmp / 'hf0'}",
             "--exact_gelu", "--verify=false"])
        run("convert_to_huggingface (verify on)",
            ["bert.convert_to_huggingface", f"--tf_checkpoint={ckpt}", f"--output_dir={tmp / 'hf'}",
             "--exact_gelu"])
        run("convert_from_huggingface",
            ["bert.convert_from_huggingface", f"--hf_model_dir={tmp / 'hf'}", f"--output_dir={tmp / 'tf2'}"])
        run("compare_weights HF vs TF (--no_text, --max_rel_diff 0)",
            ["bert.compare_weights", str(tmp / "hf"), str(ckpt), "--no_text", "--max_rel_diff=0",
             f"--json={tmp / 'r.json'}", f"--plot={tmp / 'r.png'}"])
        run("compare_weights HF vs TF (built-in text probe)",
            ["bert.compare_weights", str(tmp / "hf"), str(ckpt)])


if __name__ == "__main__":
    main()
