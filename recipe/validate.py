"""Everything a later step will need, checked when the command starts, whatever --steps is.

A typo must cost seconds and write nothing (no run folder, no config, no step marker), not
the hours of the text step. Each check raises RecipeError with one line naming the setting
or file and what to do. Content checks are cheap: the --init checkpoint's variable shapes
come from its index (no tensor is loaded); the notes categories need one pass over the
file, cached with the file's fingerprint (utils.fingerprint) so it is paid once.
"""
from __future__ import annotations

import importlib.util
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from recipe.config import RecipeError
from recipe.settings import MODEL_SIZE_KEYS
from utils.cli import UserError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
NER_FILES = ("train.tsv", "dev.tsv", "test.tsv")
MEDNLI_FILES = ("mli_train_v1.jsonl", "mli_dev_v1.jsonl", "mli_test_v1.jsonl")


def validate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run every check; returns the BERT config (dict of Google fields) the run will train."""
    validate_runtime(cfg)
    bert_config = validate_model(cfg)
    validate_hyperparameters(cfg, bert_config)
    if cfg.get("notes"):
        validate_notes(cfg["notes"], cfg["corpus"])
    else:
        validate_demo_corpus(cfg["corpus"])
    if cfg.get("spacy_model"):
        validate_spacy_model(cfg["spacy_model"])
    if cfg.get("reference"):
        validate_reference(cfg["reference"])
    if cfg.get("eval_data"):
        validate_eval_data(cfg["eval_data"], cfg.get("eval_seeds"), cfg.get("eval_max_steps"))
    else:
        given = [k for k in ("eval_preset", "eval_seeds", "eval_max_steps") if cfg.get(k) is not None]
        _require(not given, f"--{given[0] if given else ''} applies only with --eval_data DIR")
    return bert_config


# ----------------------------------------------------------------------------- settings

def _require(ok: bool, message: str) -> None:
    if not ok:
        raise RecipeError(message)


def validate_hyperparameters(cfg: dict[str, Any], bert_config: dict[str, Any]) -> None:
    """Numbers every stage will be given, checked against each other and the model."""
    c = cfg
    for key in ("train_batch_size", "eval_batch_size", "num_train_steps", "save_checkpoints_steps",
                "max_eval_steps", "dupe_factor"):
        _require(c[key] >= 1, f"--{key} must be >= 1, not {c[key]}")
    _require(math.isfinite(c["learning_rate"]) and c["learning_rate"] > 0,
             f"--learning_rate must be > 0, not {c['learning_rate']}")
    _require(0 < c["masked_lm_prob"] <= 1, f"--masked_lm_prob must be in (0, 1], not {c['masked_lm_prob']}")
    _require(0 <= c["short_seq_prob"] <= 1, f"--short_seq_prob must be in [0, 1], not {c['short_seq_prob']}")
    _require(0 <= c["num_warmup_steps"] <= c["num_train_steps"],
             f"--num_warmup_steps {c['num_warmup_steps']} must be between 0 and num_train_steps "
             f"{c['num_train_steps']}")
    _require(c["keep_checkpoint_max"] >= 0, f"--keep_checkpoint_max must be >= 0, not {c['keep_checkpoint_max']}")
    _require(c["random_seed"] >= 0, f"--random_seed must be >= 0, not {c['random_seed']}")
    # [CLS] A [SEP] B [SEP] needs at least 5 positions.
    positions = bert_config["max_position_embeddings"]
    _require(5 <= c["max_seq_length"] <= positions,
             f"--max_seq_length {c['max_seq_length']} must be between 5 and the model's "
             f"max_position_embeddings ({positions})")
    _require(1 <= c["max_predictions_per_seq"] <= c["max_seq_length"],
             f"--max_predictions_per_seq {c['max_predictions_per_seq']} must be between 1 and "
             f"max_seq_length ({c['max_seq_length']})")
    if c.get("shard_notes") is not None:
        _require(c["shard_notes"] >= 1, f"--shard_notes must be >= 1, not {c['shard_notes']}")
    if c.get("log_every_n_steps") is not None:
        _require(c["log_every_n_steps"] >= 1, f"--log_every_n_steps must be >= 1, not {c['log_every_n_steps']}")
    _require(c["amp_dtype"] in ("bfloat16", "float16"), f"--amp_dtype must be bfloat16 or float16, not {c['amp_dtype']}")
    if c["mode"] == "demo":
        _require(c["demo_notes"] >= 1, f"--demo_notes must be >= 1, not {c['demo_notes']}")


def validate_runtime(cfg: dict[str, Any]) -> None:
    """Worker counts and the pass-through flags of the distributed stages."""
    from utils.executor import ExecutorSettings

    c = cfg
    _require(c["num_workers"] >= 1, f"--num_workers must be >= 1, not {c['num_workers']}")
    for key in ("num_devices", "iterations_per_loop", "dask_workers"):
        if c.get(key) is not None:
            _require(c[key] >= 1, f"--{key} must be >= 1, not {c[key]}")
    if c.get("note_time_budget") is not None:
        _require(math.isfinite(c["note_time_budget"]) and c["note_time_budget"] > 0,
                 f"--note_time_budget must be > 0 seconds, not {c['note_time_budget']}")
    if c.get("scheduler") is not None:
        _require(bool(c["scheduler"].strip()) and " " not in c["scheduler"].strip(),
                 f"--scheduler {c['scheduler']!r}: give the scheduler's address, e.g. tcp://10.0.0.1:8786")
    try:
        ExecutorSettings(c["num_workers"], c.get("scheduler"), c.get("dask_workers")).check()
    except UserError as exc:  # utils.executor's own check, reworded as the recipe's
        raise RecipeError(str(exc)) from None
    hosts = c.get("worker_hosts")
    if hosts is not None:
        for host in hosts.split(","):
            name, _, port = host.strip().rpartition(":")
            _require(bool(name) and port.isdigit() and 0 < int(port) < 65536,
                     f"--worker_hosts: {host.strip()!r} is not host:port (give a comma list of host:port)")
    if c.get("task_index") is not None:
        _require(hosts is not None, "--task_index needs --worker_hosts (this machine's index in that list)")
        n = len(hosts.split(","))
        _require(0 <= c["task_index"] < n, f"--task_index {c['task_index']} must be between 0 and {n - 1} "
                                           f"(--worker_hosts lists {n})")


# ----------------------------------------------------------------------------- model

def scratch_bert_config(cfg: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    """The bert_config.json of a model trained from scratch at the run's size."""
    base = cfg.get("model_size") == "base"
    return {
        "vocab_size": vocab_size, "hidden_size": cfg["tiny_hidden_size"],
        "num_hidden_layers": cfg["tiny_layers"], "num_attention_heads": cfg["tiny_heads"],
        "intermediate_size": cfg["tiny_intermediate_size"], "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        # BERT-Base has 512 positions; the smaller models keep the demo's
        # max(128, max_seq_length), so the demo's outputs are unchanged.
        "max_position_embeddings": 512 if base else max(128, cfg["max_seq_length"]),
        "type_vocab_size": 2, "initializer_range": 0.02,
    }


def validate_model(cfg: dict[str, Any]) -> dict[str, Any]:
    """The --init folder or the scratch model's size and vocab; returns the BERT config."""
    if cfg.get("init"):
        return validate_init(cfg["init"])
    for key in MODEL_SIZE_KEYS:
        _require(cfg[key] >= 1, f"--{key} must be >= 1, not {cfg[key]}")
    _require(cfg["tiny_hidden_size"] % cfg["tiny_heads"] == 0,
             f"--tiny_hidden_size {cfg['tiny_hidden_size']} must be a multiple of --tiny_heads {cfg['tiny_heads']}")
    if cfg.get("vocab"):
        vocab = check_vocab_file(cfg["vocab"], "--vocab")
        return scratch_bert_config(cfg, len(vocab))
    _require(cfg["vocab_size"] > len(SPECIAL_TOKENS),
             f"--vocab_size must be > {len(SPECIAL_TOKENS)} (the special tokens), not {cfg['vocab_size']}")
    return scratch_bert_config(cfg, cfg["vocab_size"])


def check_vocab_file(path: str, what: str) -> list[str]:
    """A WordPiece vocab with Google BERT's special tokens; returns its tokens."""
    from bert.checkpoint_map import CheckpointError, read_vocab

    try:
        vocab = read_vocab(path)
    except (CheckpointError, OSError) as exc:
        raise RecipeError(f"{what} {exc}") from None
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    _require(not missing, f"{what} {path}: vocab lacks the special token(s) {', '.join(missing)}")
    return vocab


def validate_init(init: dict[str, Any]) -> dict[str, Any]:
    """Config readable, vocab complete and of vocab_size tokens, checkpoint readable with
    every variable shaped as the config says (from the index: no tensor is loaded)."""
    from bert.checkpoint_map import CheckpointError, check_vocab, read_bert_config

    folder = str(Path(init["prefix"]).parent)
    try:
        config = read_bert_config(init["bert_config_file"])
        vocab = check_vocab_file(init["vocab_file"], "--init")
        check_vocab(vocab, config, init["vocab_file"])
    except CheckpointError as exc:
        raise RecipeError(f"--init {folder}: {exc}") from None
    check_checkpoint_shapes(init["prefix"], config, f"--init {folder}")
    return config


def checkpoint_shape_map(prefix: str, what: str) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """(variable -> shape, variable -> dtype) of a TF checkpoint, read from its index."""
    from bert.checkpoint_map import CheckpointError, read_tf_checkpoint_shapes

    try:
        return read_tf_checkpoint_shapes(prefix)
    except CheckpointError as exc:
        raise RecipeError(f"{what}: {exc}") from None


def check_checkpoint_shapes(prefix: str, config: dict[str, Any], what: str, require_bert: bool = True) -> None:
    """Every model variable of the checkpoint has the shape `config` implies; the data
    files are present and not shorter than the index says."""
    import numpy as np

    from bert.checkpoint_map import CheckpointError, check_weights, is_model_weight

    shapes, dtypes = checkpoint_shape_map(prefix, what)
    # Zero-stride views: real arrays with the checkpoint's shapes, no memory behind them.
    views = {n: np.broadcast_to(np.zeros((), bool), s) for n, s in shapes.items() if is_model_weight(n)}
    try:
        missing = check_weights(views, config, prefix, require_all=False)
    except CheckpointError as exc:
        raise RecipeError(f"{what}: {exc} (bert_config.json and the checkpoint disagree)") from None
    lost = [n for n in missing if n.startswith("bert/")]
    if require_bert and lost:
        raise RecipeError(f"{what}: checkpoint {prefix} lacks {len(lost)} BERT variable(s) the config "
                          f"implies, e.g. {lost[0]}")
    _check_data_size(prefix, shapes, dtypes, what)


def _check_data_size(prefix: str, shapes: dict, dtypes: dict, what: str) -> None:
    """A truncated .data file (an interrupted download) is caught here, not mid-training."""
    data = sorted(Path(prefix).parent.glob(Path(prefix).name + ".data-*-of-*"))
    _require(bool(data), f"{what}: {prefix}.data-* missing (the checkpoint's tensor data)")
    expected_shards = int(data[0].name.rsplit("-of-", 1)[1])
    _require(len(data) == expected_shards,
             f"{what}: {prefix} has {len(data)} of its {expected_shards} .data shards")
    if any(not dt.is_numeric and not dt.is_bool for dt in dtypes.values()):
        return  # variable-size (string) tensors: size unknown from the index
    need = sum(int(math.prod(s)) * dtypes[n].size for n, s in shapes.items())
    have = sum(p.stat().st_size for p in data)
    _require(have >= need, f"{what}: {data[0]} is truncated ({have:,} bytes, the index needs {need:,}); "
                           "download the checkpoint again")


def validate_reference(path: str) -> None:
    """--reference: an HF folder (safetensors) or a TF checkpoint, readable shape-wise."""
    from bert.checkpoint_map import (HF_PICKLE_WEIGHTS, HF_WEIGHTS, CheckpointError, check_weights,
                                     google_config, hf_to_tf_weights, read_bert_config, read_json,
                                     resolve_checkpoint)

    p = Path(path)
    _require(p.exists() or Path(path + ".index").exists(), f"--reference {path}: no such file or folder")
    try:
        if p.is_dir() and (p / "config.json").is_file():
            config = google_config(read_json(p / "config.json"), str(p / "config.json"))
            if not (p / HF_WEIGHTS).is_file():
                reason = (f"only {HF_PICKLE_WEIGHTS} (pickled; convert it with python -m "
                          "bert.convert_from_huggingface --allow_pickle_i_trust_this_code)"
                          if (p / HF_PICKLE_WEIGHTS).is_file() else f"no {HF_WEIGHTS}")
                raise RecipeError(f"--reference {path}: {reason}")
            views = _safetensors_shapes(p / HF_WEIGHTS, path)
            check_weights(hf_to_tf_weights(views, str(p)), config, str(p), require_all=False)
            return
        prefix = resolve_checkpoint(p)
    except CheckpointError as exc:
        raise RecipeError(f"--reference {exc}") from None
    config_file = Path(prefix).parent / "bert_config.json"
    if config_file.is_file():
        try:
            config = read_bert_config(config_file)
        except CheckpointError as exc:
            raise RecipeError(f"--reference {exc}") from None
        check_checkpoint_shapes(prefix, config, f"--reference {path}", require_bert=True)
    else:
        checkpoint_shape_map(prefix, f"--reference {path}")


def _safetensors_shapes(path: Path, what: str) -> dict[str, Any]:
    """Zero-stride arrays with the shapes in a safetensors header (no tensor is read)."""
    import numpy as np
    from safetensors import safe_open

    try:
        with safe_open(str(path), "np") as f:
            return {k: np.broadcast_to(np.zeros((), bool), f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types on a damaged header
        raise RecipeError(f"--reference {what}: cannot read its weights ({str(exc).splitlines()[0]})") from None


# ----------------------------------------------------------------------------- notes

def note_categories(path: str) -> dict[str, int]:
    """Notes per category of a notes file: one streamed pass (progress on stderr), cached
    by the file's path, size and mtime."""
    from data_prep.notes import NotesInputError, iter_notes
    from utils.fingerprint import FileFacts
    from utils.progress import Progress

    def scan(p: Path) -> dict[str, int]:
        counts: Counter[str] = Counter()
        progress = Progress("notes", label=f"checking the categories of {p.name}", interval=30)
        try:
            for note in iter_notes(p):
                counts[note.category] += 1
                progress.update()
        except NotesInputError as exc:
            raise RecipeError(f"--notes {exc}") from None
        return dict(counts.most_common())

    return FileFacts().get(path, "categories", scan)


def validate_notes(path: str, corpus: str) -> None:
    """The notes file's header (data_prep.notes's reader), and that --corpus selects notes."""
    from data_prep.notes import NotesInputError, iter_notes

    try:
        iter_notes(path).close()  # opening checks the file, its compression and its header
    except NotesInputError as exc:
        raise RecipeError(f"--notes {exc}") from None
    if corpus.strip().lower() == "all":
        return
    check_corpus(corpus, note_categories(path), f"--notes {path}")


def check_corpus(corpus: str, categories: dict[str, int], where: str) -> None:
    """Every category named by --corpus exists in `categories` (compared as the sectioner
    selects: strip + casefold); else refuse, listing the categories there are."""
    from data_prep.notes import corpus_selector

    try:
        corpus_selector(corpus)
    except ValueError as exc:
        raise RecipeError(f"--corpus: {exc}") from None
    wanted = ["Discharge summary"] if corpus.strip().lower() == "discharge" else \
        [c for c in corpus.split(",") if c.strip()]
    unknown = [w for w in wanted if not any(corpus_selector(w)(c) for c in categories)]
    if unknown:
        listed = ", ".join(f"{c.strip()!r} ({n:,})" if n else repr(c.strip()) for c, n in categories.items())
        raise RecipeError(f"--corpus {corpus}: no note of category {', '.join(repr(u) for u in unknown)} in "
                          f"{where}; its categories: {listed or '(none: no notes)'}")


def validate_demo_corpus(corpus: str) -> None:
    """The demo's notes are synthetic, in MIMIC-III's categories."""
    if corpus.strip().lower() == "all":
        return
    from data_prep.synthetic_notes import CATEGORY_COUNTS

    check_corpus(corpus, {c: 0 for c, _ in CATEGORY_COUNTS}, "the synthetic demo notes")


def validate_spacy_model(name: str) -> None:
    """--spacy_model: an installed package or a model folder (it loads in the text step)."""
    if Path(name).is_dir():
        return
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    _require(found, f"--spacy_model {name}: not installed and not a folder; install en_core_sci_md from "
                    "the scispaCy releases, give the path of an unpacked model, or leave the option out "
                    "for the model-free splitter")


# ----------------------------------------------------------------------------- evaluation

def eval_tasks(eval_data: str) -> list[tuple[str, str, Path]]:
    """(folder name, task kind, folder) of each downstream task folder in --eval_data:
    `mednli/` (mednli) or a folder of train/dev/test.tsv (ner)."""
    root = Path(eval_data)
    _require(root.is_dir(), f"--eval_data {eval_data}: not a folder")
    tasks = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        kind, files = ("mednli", MEDNLI_FILES) if sub.name == "mednli" else ("ner", NER_FILES)
        missing = [f for f in files if not (sub / f).is_file()]
        _require(not missing, f"--eval_data {sub}: {', '.join(missing)} missing (a {kind} task folder "
                              f"holds {', '.join(files)})")
        tasks.append((sub.name, kind, sub))
    _require(bool(tasks), f"--eval_data {eval_data}: no task folder in it (mednli/ with "
                          f"{', '.join(MEDNLI_FILES)}, or NER folders with {', '.join(NER_FILES)})")
    return tasks


def downstream_available() -> bool:
    """True when the downstream_tasks package (run + compare) is installed in this checkout."""
    try:
        return all(importlib.util.find_spec(m) is not None
                   for m in ("downstream_tasks.run", "downstream_tasks.compare"))
    except ImportError:
        return False


def validate_eval_data(eval_data: str, seeds: str | None = None, max_steps: int | None = None) -> None:
    eval_tasks(eval_data)
    if seeds is not None:
        _require(bool(re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", seeds)),
                 f"--eval_seeds {seeds!r}: give a comma list of whole numbers, e.g. 1,2,3,4,5")
    if max_steps is not None:
        _require(max_steps >= 1, f"--eval_max_steps must be >= 1, not {max_steps}")
    _require(downstream_available(), "--eval_data needs the downstream_tasks package (python -m "
                                     "downstream_tasks.run / .compare), which this checkout lacks")
