"""bench/bench_gpu.sh runs on a machine without a GPU in its --tiny mode (the real
figures need a GPU; the script must be ready for one). Its FLOP count and peak table are
bert.flops, tested in tests/bert/test_flops.py."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
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
