#!/usr/bin/env bash
# One prepared GPU benchmark: sets up the GPU venv (CLINICALBERT_DEVICE=gpu
# scripts/ensure_venv.sh; a no-op when it is up to date), then measures BERT-Base
# pretraining throughput with bench/bench_gpu.py (fp32, XLA, XLA+bf16; batch 32 and the
# largest batch that fits; iterations_per_loop 1 and 100; all GPUs when there are
# several). Measurements stop starting new cases after --budget_s (default 360 s).
#
#   bash bench/bench_gpu.sh            # on a GPU machine
#   bash bench/bench_gpu.sh --tiny     # CPU check of the script: tiny model, existing venv
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --tiny "* ]]; then
  CLINICALBERT_DEVICE=gpu bash scripts/ensure_venv.sh
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# XLA auto-clustering on CPU needs this flag when TF starts; sessions without
# --use_xla are not affected (their jit level stays off).
export TF_XLA_FLAGS="${TF_XLA_FLAGS:-} --tf_xla_cpu_global_jit"
exec .venv/bin/python -m bench.bench_gpu "$@"
