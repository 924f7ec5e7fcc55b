"""FLOPs of one BERT pretraining sequence and the peak FLOP/s of known GPUs: the two
terms of model FLOPs utilisation (MFU = achieved FLOP/s / peak), which bench/bench_gpu.py
reports for bert.run_pretraining's training graph.

FLOPs are counted from the model config: forward = 2 x the multiply-adds of every matmul
(per token and layer: Q, K, V and output projections 4 H^2, feed-forward 2 H I, attention
scores and values 2 S H; the masked-LM head only at the predicted positions: H^2 + H V;
the pooler and the next-sentence head), times 3 for forward + backward. Embedding
look-ups, softmax and layer norm are not matmuls and are left out, as MFU usually does.
BERT-Base, sequence 128, 20 predictions: 69.8 GFLOP per sequence.
"""
from __future__ import annotations

from typing import Mapping

# Dense bf16 tensor-core peak TFLOP/s per GPU, keyed by a substring of nvidia-smi's name
# (vendor data sheets; fp32 runs use TF32 tensor cores and are reported against the same
# peak so rows compare).
PEAK_TFLOPS: dict[str, float] = {
    "H200": 989.0, "H100": 989.0, "GH200": 989.0, "B200": 2250.0,
    "A100": 312.0, "A800": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
    "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0, "T4": 65.0}


def flops_per_sequence(cfg: Mapping[str, int], seq: int = 128, pred: int = 20) -> float:
    """Forward + backward FLOPs of one pretraining sequence of length `seq` with `pred`
    masked positions, for a bert_config.json-style `cfg` (see the module docstring)."""
    h, i, v, n = (cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"],
                  cfg["num_hidden_layers"])
    per_token_layer = 4 * h * h + 2 * h * i + 2 * seq * h
    forward_macs = seq * n * per_token_layer + pred * (h * h + h * v) + h * h + 2 * h
    return 3 * 2 * forward_macs


def peak_tflops(gpu_name: str) -> float | None:
    """The dense bf16 peak of the GPU model named `gpu_name` (as nvidia-smi prints it), or
    None when it is not in PEAK_TFLOPS. The longest matching key wins ("GH200" over
    "H200", "L40S" over "L4")."""
    for key, value in sorted(PEAK_TFLOPS.items(), key=lambda kv: -len(kv[0])):
        if key in gpu_name:
            return value
    return None
