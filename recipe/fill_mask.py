"""Load an exported model with transformers (offline) and print fill-mask predictions
for a few clinical sentences: `python -m recipe.fill_mask HF_DIR [SENTENCE ...]`."""
from __future__ import annotations

import os
import sys

PROBES = [
    "The patient was admitted with chest [MASK].",
    "She was started on [MASK] for the pneumonia.",
    "Chest x-ray showed no acute cardiopulmonary [MASK].",
    "The patient was discharged [MASK] in stable condition.",
]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m recipe.fill_mask HF_DIR [SENTENCE ...]", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the MLM head loads without the NSP head: expected
    fill = pipeline("fill-mask", model=argv[1], tokenizer=argv[1], top_k=3)
    for sentence in argv[2:] or PROBES:
        guesses = ", ".join(f"{p['token_str']} ({p['score']:.2f})" for p in fill(sentence))
        print(f"{sentence}\n    -> {guesses}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
