"""Tiny BERT folders and synthetic task data for the downstream tests (no downloads)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_tiny_bert(folder: Path, vocab: list[str], heads: bool = True, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT saved by transformers (BertForPreTraining, or BertModel
    without heads), with vocab.txt and a cased tokenizer config."""
    import torch
    from transformers import BertConfig, BertForPreTraining, BertModel
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=160)
    model = (BertForPreTraining if heads else BertModel)(config)
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    return folder


def words_vocab(texts: list[str]) -> list[str]:
    """Special tokens, every word and punctuation mark of `texts`, and single characters."""
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t)})
    chars = sorted({c for t in texts for c in t if not c.isspace()})
    return SPECIAL + words + [c for c in chars if c not in words] + ["##" + c for c in chars]


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    from downstream_tasks import synthetic
    return synthetic.generate(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def mednli_model(synthetic_dir: Path, tmp_path_factory) -> Path:
    texts = []
    for f in (synthetic_dir / "mednli").glob("*.jsonl"):
        for line in f.read_text().splitlines():
            obj = json.loads(line)
            texts += [obj["sentence1"], obj["sentence2"]]
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny_mednli", words_vocab(texts))


@pytest.fixture(scope="session")
def ncbi_dir(shared_dir: Path, tmp_path_factory) -> Path:
    """A small NCBI-disease task folder: 160 training sentences, 40 dev and 80 test
    sentences from the public devel file (the corpus's own test file is not in shared/)."""
    from downstream_tasks import data
    src = shared_dir / "data" / "ner" / "ncbi_disease"
    train, devel = data.read_conll(src / "train.tsv"), data.read_conll(src / "devel.tsv")
    folder = tmp_path_factory.mktemp("ncbi")
    data.write_conll(folder / "train.tsv", train[:160])
    data.write_conll(folder / "dev.tsv", devel[:40])
    data.write_conll(folder / "test.tsv", devel[40:120])
    return folder


@pytest.fixture(scope="session")
def cased_model(cased_vocab: Path, tmp_path_factory) -> Path:
    vocab = cased_vocab.read_text(encoding="utf-8").splitlines()
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny_cased", vocab)


@pytest.fixture(scope="session")
def mednli_runs(synthetic_dir: Path, mednli_model: Path, tmp_path_factory) -> tuple[Path, Path]:
    """Two MedNLI runs (seeds 1, 2; 12 steps): the tiny model, and a copy with other weights."""
    from downstream_tasks import run
    texts_model_b = make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny_mednli_b",
                                   (mednli_model / "vocab.txt").read_text().splitlines(), seed=1)
    root = tmp_path_factory.mktemp("mednli_runs")
    for side, model in (("a", mednli_model), ("b", texts_model_b)):
        run.evaluate("mednli", synthetic_dir / "mednli", model, root / side / "mednli", seeds=[1, 2],
                     max_steps=12)
    return root / "a", root / "b"
