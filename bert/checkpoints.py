"""Checkpoints of a pretraining run: which one to resume from, loading and restoring.

Resume follows the project's one rule for a checkpoint folder
(`checkpoint_map.resolve_checkpoint`: the `checkpoint` state file, else the highest
`model.ckpt-N`, else a single `*.ckpt`), and additionally survives a damaged newest
checkpoint (a disk filled or a machine died while it was written): every tensor of the
candidate is read once, and an unreadable one is skipped, with a warning naming it, for
the next older `model.ckpt-N`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import tensorflow as tf
from absl import logging

from bert import modeling
from bert.checkpoint_map import CheckpointError, read_tf_checkpoint_shapes, resolve_checkpoint

tf1 = tf.compat.v1


def _unreadable_reason(prefix: str) -> str | None:
    """None when every tensor of the checkpoint reads back, else TF's first error line."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    # TF's reader reports damaged files as OpError (bad index), ValueError, or IndexError
    # ("Read less bytes than requested": a truncated data file).
    except (tf.errors.OpError, ValueError, IndexError) as e:
        text = e.message if isinstance(e, tf.errors.OpError) else str(e)
        return text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return None


def _step_checkpoints(folder: Path) -> list[str]:
    """The `model.ckpt-N` prefixes in `folder`, newest (highest N) first."""
    steps = []
    for index in folder.glob("model.ckpt-*.index"):
        m = re.fullmatch(r"model\.ckpt-(\d+)\.index", index.name)
        if m:
            steps.append((int(m.group(1)), str(folder / index.name[: -len(".index")])))
    return [prefix for _, prefix in sorted(steps, reverse=True)]


def latest_good_checkpoint(output_dir: str) -> str | None:
    """The checkpoint a run in `output_dir` resumes from; None when it holds none.

    Corrupt candidates are skipped (warning naming each); CheckpointError when checkpoints
    exist but none can be read.
    """
    folder = Path(output_dir)
    if not folder.is_dir() or not (any(folder.glob("*.index")) or (folder / "checkpoint").exists()):
        return None
    candidates: list[str] = []
    try:
        candidates.append(resolve_checkpoint(folder))
    except CheckpointError as e:  # e.g. the state file names a checkpoint deleted since
        logging.warning("%s", e)
    candidates += [c for c in _step_checkpoints(folder) if c not in candidates]
    skipped = []
    for prefix in candidates:
        reason = _unreadable_reason(prefix)
        if reason is None:
            for bad, why in skipped:
                logging.warning("skipped the unreadable checkpoint %s (%s); resuming from %s",
                                bad, why, prefix)
            return prefix
        skipped.append((prefix, reason))
    if skipped:
        raise CheckpointError(f"{skipped[0][0]}: checkpoint unreadable ({skipped[0][1]}) and no "
                              f"older readable checkpoint in {output_dir}; remove the damaged "
                              "files or use another --output_dir")
    return None


def resolve_init_checkpoint(path: str) -> str:
    """--init_checkpoint (a prefix, or a folder: checkpoint_map's rule) -> a readable prefix."""
    try:
        prefix = resolve_checkpoint(path)
    except CheckpointError as e:
        raise CheckpointError(f"--init_checkpoint={path}: {e}") from None
    reason = _unreadable_reason(prefix)
    if reason is not None:
        raise CheckpointError(f"--init_checkpoint={prefix}: checkpoint unreadable ({reason})")
    return prefix


def check_shapes(variables: list, checkpoint: str, what: str) -> dict:
    """{name: variable} of `variables` found in `checkpoint`; CheckpointError on a shape clash."""
    ckpt_shapes, _ = read_tf_checkpoint_shapes(checkpoint)
    found = {}
    for var in variables:
        name = var.op.name
        if name not in ckpt_shapes:
            continue
        want, got = var.shape.as_list(), list(ckpt_shapes[name])
        if want != got:
            raise CheckpointError(f"{what} {checkpoint}: variable '{name}' has shape {got} in the "
                                  f"checkpoint but {want} in the model (check bert_config_file)")
        found[name] = var
    return found


def init_from_checkpoint(tvars: list, init_checkpoint: str) -> dict:
    """Initialise each trainable variable present in `init_checkpoint` from it (optimizer
    slots and global_step start fresh). Logs loaded and fresh variables, as Google's did."""
    # FAITHFUL: weights only: Adam slots and global_step start fresh (as Google's Estimator)
    check_shapes(tvars, init_checkpoint, "--init_checkpoint")
    assignment_map, initialized = modeling.get_assignment_map_from_checkpoint(
        tvars, init_checkpoint)
    tf1.train.init_from_checkpoint(init_checkpoint, assignment_map)
    logging.info("**** Trainable Variables ****")
    fresh = []
    for var in tvars:
        init_string = ", *INIT_FROM_CKPT*" if var.name in initialized else ""
        if not init_string:
            fresh.append(var.op.name)
        logging.info("  name = %s, shape = %s%s", var.name, var.shape, init_string)
    logging.info("init_checkpoint %s: %d of %d trainable variables loaded; fresh: %s",
                 init_checkpoint, len(tvars) - len(fresh), len(tvars),
                 ", ".join(fresh) if fresh else "none")
    return initialized


def restorer(saver: tf1.train.Saver, latest: str | None,
             variables: list | None = None) -> Callable[[tf1.Session], None]:
    """Build (before the graph is finalised) what restores everything from `latest`
    (resume) or runs the initialisers (fresh start).

    `variables`: the checkpointed ones (default: all global variables). Non-trainable
    extras absent from the checkpoint (e.g. `loss_scale` when resuming an fp32 run with
    float16 AMP) start fresh; anything else missing is an error.
    """
    local_init = tf1.local_variables_initializer()
    gvars = tf1.global_variables() if variables is None else variables
    if latest is None:
        init = tf1.variables_initializer(gvars)
        return lambda sess: sess.run([init, local_init])
    found = check_shapes(gvars, latest, "checkpoint")
    missing = [v for v in gvars if v.op.name not in found]
    trainable = set(id(v) for v in tf1.trainable_variables())
    bad = [v.op.name for v in missing if id(v) in trainable
           or v.op.name.endswith(("/adam_m", "/adam_v")) or v.op.name == "global_step"]
    if bad:
        raise CheckpointError(f"checkpoint {latest}: lacks variable '{bad[0]}' of the model "
                              f"({len(bad)} missing); is output_dir from another model?")
    if not missing:
        return lambda sess: (sess.run(local_init), saver.restore(sess, latest))
    logging.info("not in %s, starting fresh: %s", latest, ", ".join(v.op.name for v in missing))
    partial = tf1.train.Saver(var_list=list(found.values()))
    init_missing = tf1.variables_initializer(missing)
    return lambda sess: (sess.run([local_init, init_missing]), partial.restore(sess, latest))


def global_step_of(checkpoint: str) -> int:
    return int(tf.train.load_variable(checkpoint, "global_step"))


def check_writable(output_dir: str) -> None:
    """Create `output_dir` and prove a file can be written there (before any work)."""
    import tempfile
    try:
        os.makedirs(output_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=output_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CheckpointError(f"--output_dir={output_dir}: not writable ({e.strerror})") from None
