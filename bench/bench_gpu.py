"""Pretraining throughput of bert.run_pretraining's real training graph (bert.train_loop:
input pipeline, replicas, AdamWeightDecay, loops), on synthetic records: no data needed.

Run by bench/bench_gpu.sh (which sets up the GPU venv first). Measures, for BERT-Base
(vocab 28,996, seq 128, 20 predictions; `--tiny`: a 2-layer, 64-wide model for a CPU
check of the script itself):
  fp32; XLA; XLA + bf16 (--use_amp), at batch 32 (the recipe) with --iterations_per_loop
  1 and 100; XLA + bf16 at the largest batch of a fixed list that fits; all local GPUs
  (--num_devices) when there are several; and the input pipeline alone.
Prints sequences/s, the time per step and MFU.

MFU = achieved FLOP/s / peak: FLOPs per sequence counted from the config and the GPU's
dense bf16 peak, both from bert.flops (BERT-Base, seq 128: 69.8 GFLOP per sequence).

  python -m bench.bench_gpu [--tiny] [--budget_s 360] [--steps 20] [--input_only]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from bert.flops import flops_per_sequence, peak_tflops

BASE = {"vocab_size": 28996, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02}
TINY = BASE | {"vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 2, "intermediate_size": 128}
SEQ, PRED = 128, 20


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
        first = out.stdout.strip().splitlines()[0] if out.returncode == 0 else ""
        return first.split(":", 1)[1].split("(")[0].strip() if ":" in first else ""
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return ""


def write_records(path: str, cfg: dict, n: int = 1024, seed: int = 0) -> None:
    """Random pretraining records of the real shapes (ids in [1000, vocab) when possible)."""
    import tensorflow as tf
    rng = np.random.default_rng(seed)
    low = 1000 if cfg["vocab_size"] > 2000 else 5
    with tf.io.TFRecordWriter(path) as w:
        for _ in range(n):
            length = int(rng.integers(SEQ // 2, SEQ + 1))
            ids = np.zeros(SEQ, np.int64)
            ids[:length] = rng.integers(low, cfg["vocab_size"], size=length)
            mask = (np.arange(SEQ) < length).astype(np.int64)
            seg = ((np.arange(SEQ) >= length // 2) * mask).astype(np.int64)
            pos = np.sort(rng.choice(np.arange(1, length), PRED, replace=False))
            feats = {"input_ids": ids, "input_mask": mask, "segment_ids": seg,
                     "masked_lm_positions": pos,
                     "masked_lm_ids": rng.integers(low, cfg["vocab_size"], size=PRED),
                     "next_sentence_labels": [int(rng.integers(0, 2))]}
            ex = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=list(map(int, v))))
                  for k, v in feats.items()}
            ex["masked_lm_weights"] = tf.train.Feature(
                float_list=tf.train.FloatList(value=[1.0] * PRED))
            w.write(tf.train.Example(features=tf.train.Features(feature=ex))
                    .SerializeToString())


@dataclasses.dataclass
class Case:
    name: str
    batch: int
    iterations_per_loop: int = 1
    use_xla: bool = False
    use_amp: bool = False
    num_devices: int = 1


def measure(case: Case, cfg_path: str, records: str, steps: int, workdir: str) -> dict:
    """Build the real training graph for `case` and time `steps` steps after warm-up."""
    import tensorflow as tf
    from bert import distribute, modeling, train_loop
    from bert.run_pretraining import Options
    tf1 = tf.compat.v1
    opts = Options(bert_config_file=cfg_path, input_file=records, output_dir=workdir,
                   do_train=True, train_batch_size=case.batch, num_train_steps=10 ** 6,
                   num_warmup_steps=10, save_checkpoints_steps=10 ** 6,
                   log_every_n_steps=10 ** 6, iterations_per_loop=case.iterations_per_loop,
                   use_xla=case.use_xla, use_amp=case.use_amp, num_devices=case.num_devices)
    bert_config = modeling.BertConfig.from_json_file(cfg_path)
    layout = distribute.make_layout(case.num_devices)
    tg = train_loop.build_graph(opts, bert_config, [records], None, 0, layout)
    with tf1.Session(graph=tg.graph, config=train_loop.session_config(opts, layout)) as sess:
        tg.restore(sess)
        per_call = case.iterations_per_loop

        def call():
            if per_call == 1:
                sess.run(tg.step_op)
            else:
                sess.run(tg.loop_outputs, {tg.loop_steps: per_call})

        calls = max(1, steps // per_call)
        for _ in range(2 if steps >= 50 else 1):  # compile / warm up
            call()
        began = time.perf_counter()
        for _ in range(calls):
            call()
        seconds = time.perf_counter() - began
    done = calls * per_call
    return {"seq_per_s": done * case.batch / seconds, "step_ms": 1000 * seconds / done}


def measure_input(records: str, batch: int, seconds: float = 5.0) -> float:
    """Records/s of the input pipeline alone (read, shuffle, batch, parse)."""
    import tensorflow as tf
    from bert.pretraining_data import input_fn_builder
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        ds = input_fn_builder([records], SEQ, PRED, is_training=True, seed=1)(
            {"batch_size": batch})
        nxt = tf1.data.make_one_shot_iterator(ds).get_next()
        with tf1.Session() as sess:
            sess.run(nxt)
            n, began = 0, time.perf_counter()
            while time.perf_counter() - began < seconds:
                sess.run(nxt["input_ids"].op)
                n += batch
            return n / (time.perf_counter() - began)


def cases(tiny: bool, gpus: int) -> list[Case]:
    """The measured cases; `--tiny` (a CPU check of the script) loops 2 steps, not 100."""
    big = [64] if tiny else [1024, 512, 256, 128, 64]
    loop = 2 if tiny else 100
    out = [Case("fp32", 32), Case("fp32", 32, loop),
           Case("xla", 32, loop, use_xla=True),
           Case("xla+bf16", 32, 1, use_xla=True, use_amp=True),
           Case("xla+bf16", 32, loop, use_xla=True, use_amp=True)]
    out += [Case("xla+bf16 largest", b, loop, use_xla=True, use_amp=True) for b in big]
    if gpus > 1:
        out.append(Case(f"xla+bf16 {gpus} GPUs", 32 * gpus, loop, use_xla=True, use_amp=True,
                        num_devices=gpus))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="2-layer 64-wide model (CPU check)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per case")
    parser.add_argument("--input_only", action="store_true",
                        help="measure the input pipeline alone and stop")
    parser.add_argument("--budget_s", type=float, default=360.0,
                        help="stop starting new cases after this many seconds")
    args = parser.parse_args()
    import tensorflow as tf
    began = time.monotonic()
    cfg = TINY if args.tiny else BASE
    gpus = len(tf.config.list_physical_devices("GPU"))
    name = gpu_name() if gpus else ""
    peak = peak_tflops(name) if name else None
    steps = args.steps or (2 if args.tiny else 200)
    flops = flops_per_sequence(cfg)
    print(f"device: {name or 'CPU'} x{max(gpus, 1)}; peak {peak or 'unknown'} TFLOP/s (bf16 "
          f"dense); model {'tiny' if args.tiny else 'BERT-Base'}: "
          f"{flops / 1e9:.1f} GFLOP per sequence (fwd+bwd)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path, records = os.path.join(tmp, "bert_config.json"), os.path.join(tmp, "r.tfrecord")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        write_records(records, cfg)
        print(f"input pipeline alone: {measure_input(records, 32, 2 if args.tiny else 5):,.0f} "
              "sequences/s (batch 32)", flush=True)
        if args.input_only:
            return 0
        print(f"{'case':<24}{'batch':>6}{'iter/loop':>10}{'seq/s':>10}{'step ms':>10}"
              f"{'MFU':>8}", flush=True)
        largest_done = False
        for case in cases(args.tiny, gpus):
            if case.name.endswith("largest") and largest_done:
                continue
            if time.monotonic() - began > args.budget_s:
                print(f"{case.name:<24}{case.batch:>6}{case.iterations_per_loop:>10}  "
                      "skipped (time budget)", flush=True)
                continue
            try:
                r = measure(case, cfg_path, records, steps, os.path.join(tmp, "out"))
            except tf.errors.ResourceExhaustedError:
                print(f"{case.name:<24}{case.batch:>6}{case.iterations_per_loop:>10}  "
                      "out of memory", flush=True)
                continue
            largest_done |= case.name.endswith("largest")
            mfu = (f"{100 * r['seq_per_s'] * flops / (peak * 1e12 * max(case.num_devices, 1)):.1f}%"
                   if peak else "n/a")
            print(f"{case.name:<24}{case.batch:>6}{case.iterations_per_loop:>10}"
                  f"{r['seq_per_s']:>10.1f}{r['step_ms']:>10.2f}{mfu:>8}", flush=True)
    print(f"total {time.monotonic() - began:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
