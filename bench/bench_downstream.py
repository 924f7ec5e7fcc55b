"""Benchmark downstream NER fine-tuning: NCBI-disease train -> test, F1 and time.

    python bench/bench_downstream.py [--model HF_DIR] [--seeds 1] [--max_steps N] [--workdir DIR]

Without --model a small random BERT (4 layers, 256 wide, 4 heads, the BERT-Base cased
vocabulary from ../shared/data/vocab) is built and fine-tuned from scratch: it measures
the loop's speed on this machine, not what a pretrained model scores. With --model any
Hugging Face BERT folder (e.g. a public BERT-Base cased checkpoint converted with
bert.convert_from/to_huggingface) is used as is; on a GPU the run uses it (mixed precision).

Data: ../shared/data/ner/ncbi_disease (public domain). shared/ has its train and devel files
only, so devel serves as both dev and test (the robust preset does not select on dev).
Prints F1 / precision / recall, fine-tuning time and steps/s, and the prediction time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLINICALBERT_SHARED", REPO.parent / "shared"))


def small_bert(folder: Path, vocab: Path) -> Path:
    import torch
    from transformers import BertConfig, BertForPreTraining
    tokens = vocab.read_text(encoding="utf-8").splitlines()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokens), hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=1024, max_position_embeddings=512)
    BertForPreTraining(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return folder


def task_folder(folder: Path) -> Path:
    src = SHARED / "data" / "ner" / "ncbi_disease"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in (("train.tsv", "train.tsv"), ("dev.tsv", "devel.tsv"), ("test.tsv", "devel.tsv")):
        if not (folder / name).exists():
            (folder / name).symlink_to(src / source)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="HF BERT folder (default: a small random BERT)")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--max_steps", type=int, default=None)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    if not (SHARED / "data" / "ner" / "ncbi_disease" / "train.tsv").is_file():
        sys.exit(f"bench_downstream: error: {SHARED}/data/ner/ncbi_disease not found (set CLINICALBERT_SHARED)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from downstream_tasks import run
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_downstream-"))
    model = Path(args.model) if args.model else small_bert(work / "small_bert",
                                                         SHARED / "data" / "vocab" / "bert-base-cased-vocab.txt")
    start = time.monotonic()
    results = run.evaluate("ner", task_folder(work / "ncbi_disease"), model, work / "run",
                           seeds=[int(s) for s in args.seeds.split(",")], max_steps=args.max_steps)
    wall = time.monotonic() - start
    units = sorted((work / "run" / "units").glob("*.json"))
    for r, unit in zip(results["runs"], units):
        u = json.loads(unit.read_text())
        t = r["test"]
        print(f"seed {r['seed']}: test F1 {t['f1']:.2f} (P {t['precision']:.2f}, R {t['recall']:.2f}, "
              f"{t['entities_gold']} gold entities in {t['sentences']} sentences); {u['steps']} steps "
              f"(batch {r['setting']['batch_size']}, {r['setting']['epochs']} epochs) + dev/test prediction "
              f"in {u['seconds']:.0f} s")
    print(f"model {model} on {results['settings']['device']} (torch {results['settings']['torch']}); "
          f"test F1 {results['test_mean']:.2f} +- {results['test_sd']:.2f}; total wall {wall:.0f} s; "
          f"log: {work / 'run' / 'log.txt'}")


if __name__ == "__main__":
    main()
