"""bench/bench_gpu.sh runs on a machine without a GPU in its --tiny mode (the real
figures need a GPU; the script must be ready for one), and its FLOP count is right."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bench import bench_gpu

REPO = Path(__file__).resolve().parents[2]


def test_flops_per_sequence_of_bert_base():
    # Counted by hand for BERT-Base, seq 128, 20 predictions (multiply-adds x 2 x 3):
    # encoder 128 * 12 * (4*768^2 + 2*768*3072 + 2*128*768), MLM head 20 * (768^2 +
    # 768*28996), pooler 768^2, NSP 2*768.
    macs = (128 * 12 * (4 * 768 ** 2 + 2 * 768 * 3072 + 2 * 128 * 768)
            + 20 * (768 ** 2 + 768 * 28996) + 768 ** 2 + 2 * 768)
    assert bench_gpu.flops_per_sequence(bench_gpu.BASE) == 6 * macs
    assert 69e9 < 6 * macs < 71e9  # "about 70 GFLOP per sequence"
    assert bench_gpu.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bench_gpu.peak_tflops("NVIDIA A100-SXM4-40GB") == 312.0
    assert bench_gpu.peak_tflops("Some Future GPU") is None


def test_bench_gpu_script_runs_on_cpu_with_a_tiny_model():
    res = subprocess.run(["bash", "bench/bench_gpu.sh", "--tiny", "--budget_s", "15"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert re.search(r"^device: CPU x1; peak unknown .* GFLOP per sequence", out, re.M), out
    assert re.search(r"^input pipeline alone: [\d,]+ sequences/s", out, re.M), out
    rows = re.findall(r"^(fp32|xla\S*(?: largest)?)\s+(\d+)\s+(\d+)\s+(.*)$", out, re.M)
    assert len(rows) == 6, out  # every case reported
    measured = [r for r in rows if re.match(r"[\d.]+\s+[\d.]+\s+n/a$", r[3].strip())]
    assert measured and measured[0][:3] == ("fp32", "32", "1"), out
    for row in rows:
        assert row in measured or row[3].strip() == "skipped (time budget)", row
    assert re.search(r"^total \d+ s$", out, re.M)
