"""Convert a Hugging Face BERT folder back into a Google BERT TF checkpoint.

    python -m bert.convert_from_huggingface --hf_model_dir HF_DIR --output_dir TF_DIR

Reads config.json + model.safetensors (BertForPreTraining, BertForMaskedLM or BertModel key
layouts, with or without the `bert.` prefix) and writes `bert_model.ckpt.{index,data-*}`
(Google variable names, values bit-identical), a `checkpoint` state file (so the folder
works as `--tf_checkpoint DIR` / `--init_checkpoint`), `bert_config.json`, `vocab.txt`, and
`training_config.json` recording `do_lower_case` when tokenizer_config.json states it (the
forward converter reads it from there).

Missing heads (a BertModel folder has no cls.*, a BertForMaskedLM no pooler/NSP head) are a
warning listing the absent variables; `--require_pretraining_heads` makes them an error
(continued pretraining from such a checkpoint would start those heads from random).
Pickled weights (pytorch_model.bin) are read only with `--allow_pickle_i_trust_this_code`.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

from absl import flags

from bert import checkpoint_map as cm
from bert.checkpoint_map import CheckpointError
from bert.convert_to_huggingface import remove_own_stale_temps
from utils.atomic import atomic_dir, write_json_atomic
from utils.cli import UsageError, absl_run, os_error_message

CHECKPOINT_NAME = "bert_model.ckpt"


def convert_from_hf(hf_model_dir: str | os.PathLike, output_dir: str | os.PathLike,
                    allow_pickle: bool = False, require_pretraining_heads: bool = False,
                    overwrite: bool = False) -> Path:
    """Write a TF checkpoint folder from an HF BERT folder; return the output folder.

    The checkpoint prefix is `output_dir/bert_model.ckpt`.
    """
    hf_dir = Path(hf_model_dir)
    raw_config, hf_weights = cm.read_hf_folder(hf_dir, allow_pickle)
    config = cm.google_config(raw_config, str(hf_dir / "config.json"))
    vocab_path = hf_dir / "vocab.txt"
    if vocab_path.is_file():
        cm.check_vocab(cm.read_vocab(vocab_path), config, vocab_path)
    else:
        print(f"warning: {hf_dir}: no vocab.txt: the checkpoint folder will have none", file=sys.stderr)
    weights = cm.hf_to_tf_weights(hf_weights, str(hf_dir))
    missing = cm.check_weights(weights, config, str(hf_dir), require_all=False)
    heads = [n for n in missing if n.startswith(("cls/", "bert/pooler/"))]
    body = [n for n in missing if n not in heads]
    if body:
        raise CheckpointError(f"{hf_dir}: encoder weight(s) missing: {', '.join(body[:8])}")
    if heads:
        msg = f"{hf_dir}: no pretraining head variable(s) {', '.join(heads)}"
        if require_pretraining_heads:
            raise CheckpointError(msg)
        print(f"warning: {msg}: the checkpoint has only the rest (not usable as a full "
              "pretraining checkpoint)", file=sys.stderr)
    do_lower_case = cm.hf_do_lower_case(hf_dir)
    if do_lower_case is None:
        print(f"warning: {hf_dir}: tokenizer_config.json states no do_lower_case: casing not "
              "recorded (transformers would lower-case by default)", file=sys.stderr)
    cm.check_output_dir(output_dir, overwrite)
    remove_own_stale_temps(output_dir)

    out = Path(output_dir)
    try:
        with atomic_dir(output_dir) as tmp:
            write_checkpoint_folder(tmp, weights, config, vocab_path, do_lower_case, hf_dir)
    except OSError as e:  # a read-only or full disk: the temporary folder is already removed
        raise CheckpointError(f"{out}: cannot write the checkpoint: {os_error_message(e)}") from None
    print(f"wrote {out / CHECKPOINT_NAME} ({len(weights)} tensors from {hf_dir})", file=sys.stderr)
    return out


def write_checkpoint_folder(tmp: Path, weights, config, vocab_path: Path, do_lower_case: bool | None,
                            hf_dir: Path) -> None:
    """Every file of the checkpoint folder, into the (temporary) folder `tmp`."""
    cm.write_tf_checkpoint(weights, tmp / CHECKPOINT_NAME)
    (tmp / "checkpoint").write_text(f'model_checkpoint_path: "{CHECKPOINT_NAME}"\n'
                                    f'all_model_checkpoint_paths: "{CHECKPOINT_NAME}"\n')
    write_json_atomic(tmp / "bert_config.json", config)
    if vocab_path.is_file():
        shutil.copyfile(vocab_path, tmp / "vocab.txt")
    if do_lower_case is not None:
        write_json_atomic(tmp / cm.TRAINING_CONFIG,
                          {"do_lower_case": do_lower_case, "converted_from": str(hf_dir.resolve())})


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise UsageError(f"unexpected argument(s): {' '.join(argv[1:])}")
    F = flags.FLAGS
    convert_from_hf(F.hf_model_dir, F.output_dir, F.allow_pickle_i_trust_this_code,
                    F.require_pretraining_heads, F.overwrite)


def define_flags() -> None:
    flags.DEFINE_string("hf_model_dir", None, "HF BERT folder (config.json + model.safetensors).")
    flags.DEFINE_string("output_dir", None, "Folder to create with bert_model.ckpt.*.")
    flags.DEFINE_boolean("allow_pickle_i_trust_this_code", False,
                         "Read pytorch_model.bin (a pickle: loading it can run code) when there is "
                         "no model.safetensors.")
    flags.DEFINE_boolean("require_pretraining_heads", False,
                         "Fail (instead of warning) when the folder lacks cls.* / pooler weights.")
    flags.DEFINE_boolean("overwrite", False, "Replace a non-empty output_dir.")
    flags.mark_flags_as_required(["hf_model_dir", "output_dir"])


if __name__ == "__main__":
    define_flags()
    absl_run("convert_from_huggingface", main)
