"""Fine-tuning and prediction with PyTorch + transformers: a plain loop, no Trainer.

The optimizer is Google BERT's recipe as the original run_classifier / run_ner used it:
AdamW (weight decay 0.01, epsilon 1e-6, no decay on biases and LayerNorm), linear warmup
over the first 10% of steps then linear decay to 0, gradient clipping at norm 1.0. On a
GPU the forward/backward runs in mixed precision (bfloat16 where supported, else float16
with loss scaling); on a CPU in float32.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import numpy as np

from utils.cli import UserError
from utils.progress import Progress

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # clinical work: never reach a model hub
WARMUP_FRACTION = 0.1
EVAL_BATCH = 64


class ModelError(UserError):
    """A model folder that cannot be fine-tuned (missing files, pickled weights, ...)."""


@dataclass(frozen=True)
class Setting:
    """One hyperparameter setting of a grid."""
    epochs: int
    learning_rate: float
    batch_size: int

    @property
    def key(self) -> str:
        return f"e{self.epochs}_lr{self.learning_rate:g}_b{self.batch_size}"


@dataclass
class Example:
    """One model input: ids, segment ids, and labels (an int, or one per position)."""
    input_ids: list[int]
    token_type_ids: list[int]
    label: int | list[int]


def pick_device(name: str = "auto"):
    import torch
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return torch.device(name)


def load_tokenizer(model_dir: str | os.PathLike):
    """The model's WordPiece tokenizer with casing kept.

    # DEVIATION: do_lower_case=False is forced whatever the folder says: the published
    # Bio_ClinicalBERT ships no tokenizer config, so transformers would lower-case input
    # for a cased model; both compared models must see the same (cased) text.
    """
    from transformers import BertTokenizer
    if not (Path(model_dir) / "vocab.txt").is_file():
        raise ModelError(f"{model_dir}: no vocab.txt (a Hugging Face BERT folder holds config.json, "
                         "model.safetensors and vocab.txt)")
    return BertTokenizer.from_pretrained(str(model_dir), do_lower_case=False, local_files_only=True)


def load_model(model_dir: str | os.PathLike, task: str, num_labels: int, allow_pickle: bool = False):
    """A fresh classification model on the folder's encoder (the head initialised from the
    current torch seed)."""
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: no config.json (not a Hugging Face model folder)")
    has_safetensors = (folder / "model.safetensors").is_file()
    if not has_safetensors and not allow_pickle:
        raise ModelError(f"{folder}: no model.safetensors; pytorch_model.bin is a pickle that can run "
                         "code when loaded: pass --allow_pickle_i_trust_this_code to use it")
    transformers.logging.set_verbosity_error()  # the load report lists the new head: expected
    transformers.utils.logging.disable_progress_bar()
    cls = AutoModelForSequenceClassification if task == "mednli" else AutoModelForTokenClassification
    return cls.from_pretrained(str(folder), num_labels=num_labels, local_files_only=True,
                               use_safetensors=has_safetensors)


def _batches(examples: Sequence[Example], order: Sequence[int], batch_size: int, device):
    """Padded tensors (input_ids, token_type_ids, attention_mask, labels) in `order`."""
    import torch
    for i in range(0, len(order), batch_size):
        chunk = [examples[j] for j in order[i:i + batch_size]]
        width = max(len(e.input_ids) for e in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        per_token = isinstance(chunk[0].label, list)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long) if per_token else \
            torch.tensor([e.label for e in chunk], dtype=torch.long)
        for r, e in enumerate(chunk):
            n = len(e.input_ids)
            ids[r, :n] = torch.tensor(e.input_ids)
            types[r, :n] = torch.tensor(e.token_type_ids)
            mask[r, :n] = 1
            if per_token:
                labels[r, :n] = torch.tensor(e.label)
        yield ids.to(device), types.to(device), mask.to(device), labels.to(device)


def _optimizer(model, learning_rate: float):
    import torch
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                              {"params": no_decay, "weight_decay": 0.0}], lr=learning_rate, eps=1e-6)


def linear_schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warmup to 1, then linear decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def total_steps(n_examples: int, setting: Setting, max_steps: int | None) -> int:
    steps = setting.epochs * math.ceil(n_examples / setting.batch_size)
    return min(steps, max_steps) if max_steps else steps


def _mixed_precision(device):
    """(autocast dtype or None, GradScaler or None) for `device`: bfloat16 on GPUs that have
    it, else float16 with one loss scaler for the whole run; full precision on a CPU."""
    import torch
    if device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def _autocast(dtype):
    import contextlib
    import torch
    return torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def fine_tune(model, examples: Sequence[Example], setting: Setting, seed: int, device,
              max_steps: int | None = None, log: TextIO | None = None, label: str = "") -> dict[str, Any]:
    """Train `model` in place; the example order of each epoch comes from `seed`.

    Returns {"steps", "final_loss"}. Progress (steps, steps/s, ETA) goes to `log`.
    """
    import torch
    model.to(device).train()
    steps = total_steps(len(examples), setting, max_steps)
    warmup = int(WARMUP_FRACTION * steps)
    optimizer = _optimizer(model, setting.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: linear_schedule(s, steps, warmup))
    rng = np.random.default_rng(seed)
    dtype, scaler = _mixed_precision(device)
    progress = Progress("steps", total=steps, label=label, interval=10.0, stream=log)
    step, loss_value = 0, float("nan")
    while step < steps:
        order = rng.permutation(len(examples))
        for ids, types, mask, labels in _batches(examples, order, setting.batch_size, device):
            with _autocast(dtype):
                loss = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            step += 1
            loss_value = float(loss.detach())
            progress.update(1)
            if step >= steps:
                break
    progress.done()
    if not math.isfinite(loss_value):
        raise UserError(f"{label}: training diverged (loss {loss_value}); try a lower learning rate")
    return {"steps": steps, "final_loss": loss_value}


def predict_logits(model, examples: Sequence[Example], device, each: Callable[[int, Any], None],
                   log: TextIO | None = None, label: str = "") -> None:
    """Run the model on `examples` in order; call `each(example index, logits row)`.
    Progress (examples/s, ETA) goes to `log`."""
    import torch
    model.to(device).eval()
    dtype, _ = _mixed_precision(device)
    progress = Progress("examples", total=len(examples), label=label, interval=10.0, stream=log)
    index = 0
    with torch.no_grad(), _autocast(dtype):
        for ids, types, mask, _ in _batches(examples, range(len(examples)), EVAL_BATCH, device):
            logits = model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits.float().cpu()
            for row in logits:
                each(index, row.numpy())
                index += 1
            progress.update(len(logits))
    progress.done()


def set_seed(seed: int) -> None:
    """Seed everything that draws random numbers in a run (head init, dropout)."""
    import random
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
