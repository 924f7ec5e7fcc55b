"""Load an exported model with transformers (offline) and print fill-mask predictions
for a few clinical sentences: `python -m recipe.fill_mask HF_DIR [SENTENCE ...]`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from utils.cli import UserError, run_main

PROBES = [
    "The patient was admitted with chest [MASK].",
    "She was started on [MASK] for the pneumonia.",
    "Chest x-ray showed no acute cardiopulmonary [MASK].",
    "The patient was discharged [MASK] in stable condition.",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recipe.fill_mask",
                                description="Top-3 fill-mask predictions of a Hugging Face BERT folder "
                                            "(loaded offline with transformers).")
    p.add_argument("hf_dir", help="the exported model folder (config.json, model.safetensors, vocab.txt)")
    p.add_argument("sentences", nargs="*", help="sentences with one [MASK] each (default: four built-in "
                                                "clinical probes)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (Path(args.hf_dir) / "config.json").is_file():
        raise UserError(f"{args.hf_dir}: not a Hugging Face model folder (no config.json)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the MLM head loads without the NSP head: expected
    fill = pipeline("fill-mask", model=args.hf_dir, tokenizer=args.hf_dir, top_k=3)
    for sentence in args.sentences or PROBES:
        if "[MASK]" not in sentence:
            raise UserError(f"sentence without [MASK]: give one [MASK] per sentence ({len(sentence)} characters)")
        guesses = ", ".join(f"{p['token_str']} ({p['score']:.2f})" for p in fill(sentence))
        print(f"{sentence}\n    -> {guesses}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main("python -m recipe.fill_mask", main))
