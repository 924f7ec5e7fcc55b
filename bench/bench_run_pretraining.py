"""Training throughput of bert.run_pretraining's graph vs Hugging Face BertForPreTraining.

BERT-Base (vocab 28996, 12 layers, hidden 768, seq 128, 20 masked predictions), random
inputs of the real shapes, dropout on, one optimizer step per batch:
  - tf:      our model_fn (Google's graph, AdamWeightDecay, clipping), float32
  - tf_xla:  the same with XLA auto-clustering (TF_XLA_FLAGS=--tf_xla_cpu_global_jit)
  - tf_train: the step bert.run_pretraining really runs (bert.train_loop: records read
             from a file, per-replica loss pieces, one replica), float32
  - torch:   transformers BertForPreTraining + torch.optim.AdamW, float32 (the peer)
Each runs in its own subprocess (XLA flags must be set before TF starts; no cross-talk),
warm-up steps first, then timed steps. Prints examples/s per engine and batch size, and
the median CPU seconds per step (all threads): on a shared machine wall time depends on
the other load, CPU time much less.

  python -m bench.bench_run_pretraining [--batch_sizes 8,32] [--engines tf,tf_xla,tf_train,torch]
      [--warmup 2] [--steps 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

BASE = {"vocab_size": 28996, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02}
SEQ, PRED = 128, 20


def random_batch(batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(SEQ // 2, SEQ + 1, size=batch)
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int32)
    positions = np.stack([np.sort(rng.choice(np.arange(1, n), PRED, replace=False))
                          for n in lengths]).astype(np.int32)
    return {
        "input_ids": (rng.integers(1000, BASE["vocab_size"], size=(batch, SEQ)) * mask
                      ).astype(np.int32),
        "input_mask": mask,
        "segment_ids": ((np.arange(SEQ)[None, :] >= (lengths // 2)[:, None]) * mask
                        ).astype(np.int32),
        "masked_lm_positions": positions,
        "masked_lm_ids": rng.integers(1000, BASE["vocab_size"], size=(batch, PRED)
                                      ).astype(np.int32),
        "masked_lm_weights": np.ones((batch, PRED), np.float32),
        "next_sentence_labels": rng.integers(0, 2, size=(batch, 1)).astype(np.int32),
    }


def run_tf(batch: int, warmup: int, steps: int, threads: int, xla: bool) -> list:
    """(wall, process CPU) seconds of each timed step."""
    import tensorflow as tf
    from bert import modeling
    from bert.run_pretraining import Options, model_fn_builder, session_config
    tf1 = tf.compat.v1
    config = modeling.BertConfig.from_dict(BASE)
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        data = tf.data.Dataset.from_tensors(random_batch(batch)).repeat().prefetch(2)
        features = tf1.data.make_one_shot_iterator(data).get_next()
        spec = model_fn_builder(config, None, 5e-5, 100000, 10000)(features, None, "train", {})
        init = tf1.global_variables_initializer()
    opts = Options("", "", "", use_xla=xla, num_intra_threads=threads,
                   num_inter_threads=threads)
    times = []
    with tf1.Session(graph=graph, config=session_config(opts)) as sess:
        sess.run(init)
        for _ in range(warmup + steps):
            t, c = time.perf_counter(), time.process_time()
            sess.run([spec.train_op, spec.loss])
            times.append((time.perf_counter() - t, time.process_time() - c))
    return times[warmup:]


def run_tf_train(batch: int, warmup: int, steps: int, threads: int) -> list:
    """The step run_pretraining really runs (bert.train_loop: records from a file through
    the input pipeline, replica loss pieces, AdamWeightDecay), one step per call."""
    import tempfile
    import tensorflow as tf
    from bench.bench_gpu import write_records
    from bert import distribute, modeling, train_loop
    from bert.run_pretraining import Options
    tf1 = tf.compat.v1
    with tempfile.TemporaryDirectory() as tmp:
        cfg, records = os.path.join(tmp, "bert_config.json"), os.path.join(tmp, "r.tfrecord")
        with open(cfg, "w") as f:
            json.dump(BASE, f)
        write_records(records, BASE, n=256)
        opts = Options(cfg, records, tmp, do_train=True, train_batch_size=batch,
                       num_train_steps=100000, num_warmup_steps=10000, iterations_per_loop=1,
                       num_intra_threads=threads, num_inter_threads=threads)
        tg = train_loop.build_graph(opts, modeling.BertConfig.from_dict(BASE), [records],
                                    None, 0, distribute.Layout())
        times = []
        with tf1.Session(graph=tg.graph, config=train_loop.session_config(opts)) as sess:
            tg.restore(sess)
            for _ in range(warmup + steps):
                t, c = time.perf_counter(), time.process_time()
                sess.run(tg.step_op)
                times.append((time.perf_counter() - t, time.process_time() - c))
    return times[warmup:]


def run_torch(batch: int, warmup: int, steps: int, threads: int) -> list:
    import torch
    from transformers import BertConfig, BertForPreTraining
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    cfg = BertConfig(vocab_size=BASE["vocab_size"], hidden_size=768, num_hidden_layers=12,
                     num_attention_heads=12, intermediate_size=3072, hidden_act="gelu_new",
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                     max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12)
    model = BertForPreTraining(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, eps=1e-6)
    b = random_batch(batch)
    labels = np.full((batch, SEQ), -100, np.int64)
    for i in range(batch):
        labels[i, b["masked_lm_positions"][i]] = b["masked_lm_ids"][i]
    inputs = {"input_ids": torch.tensor(b["input_ids"], dtype=torch.long),
              "attention_mask": torch.tensor(b["input_mask"], dtype=torch.long),
              "token_type_ids": torch.tensor(b["segment_ids"], dtype=torch.long),
              "labels": torch.tensor(labels),
              "next_sentence_label": torch.tensor(b["next_sentence_labels"][:, 0],
                                                  dtype=torch.long)}
    times = []
    for _ in range(warmup + steps):
        t, c = time.perf_counter(), time.process_time()
        loss = model(**inputs).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append((time.perf_counter() - t, time.process_time() - c))
    return times[warmup:]


def child(args: argparse.Namespace) -> None:
    if args.engine == "torch":
        times = run_torch(args.batch, args.warmup, args.steps, args.threads)
    elif args.engine == "tf_train":
        times = run_tf_train(args.batch, args.warmup, args.steps, args.threads)
    else:
        times = run_tf(args.batch, args.warmup, args.steps, args.threads,
                       xla=args.engine == "tf_xla")
    print("RESULT " + json.dumps({"times": times}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch_sizes", default="8,32")
    p.add_argument("--engines", default="tf,tf_xla,torch")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.engine:
        return child(args)
    print(f"BERT-Base pretraining step, seq {SEQ}, {PRED} predictions, {args.threads} threads, "
          f"{args.warmup} warm-up + {args.steps} timed steps", flush=True)
    results = {}
    for batch in [int(x) for x in args.batch_sizes.split(",")]:
        for engine in args.engines.split(","):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
            if engine == "tf_xla":
                env["TF_XLA_FLAGS"] = (env.get("TF_XLA_FLAGS", "") + " --tf_xla_cpu_global_jit")
            cmd = [sys.executable, "-m", "bench.bench_run_pretraining", "--engine", engine,
                   "--batch", str(batch), "--warmup", str(args.warmup), "--steps",
                   str(args.steps), "--threads", str(args.threads)]
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
            if res.returncode or not line:
                print(f"{engine:7s} batch {batch:3d}: FAILED\n{res.stderr[-1500:]}", flush=True)
                continue
            walls, cpus = zip(*json.loads(line[0][7:])["times"])
            eps = batch * len(walls) / sum(walls)
            results[(engine, batch)] = eps
            ratio = ""
            if engine != "torch" and ("torch", batch) in results:
                ratio = f"  ({eps / results[('torch', batch)]:.2f}x torch)"
            print(f"{engine:7s} batch {batch:3d}: {eps:6.2f} examples/s, "
                  f"median step {np.median(walls):6.2f} s wall, {np.median(cpus):6.2f} s CPU"
                  f"{ratio}  "
                  f"[wall incl. start-up {time.perf_counter() - t0:.0f} s]", flush=True)
        for engine in args.engines.split(","):
            if engine != "torch" and (engine, batch) in results and ("torch", batch) in results:
                print(f"  batch {batch}: {engine} / torch = "
                      f"{results[(engine, batch)] / results[('torch', batch)]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
