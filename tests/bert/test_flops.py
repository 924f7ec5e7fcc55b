"""bert.flops: the FLOP count of one pretraining sequence and the GPU peak table that
bench/bench_gpu.py's MFU column divides by."""
from __future__ import annotations

from bert import flops

# BERT-Base cased as the recipe trains it (bert_config.json of the published models).
BERT_BASE = {"vocab_size": 28996, "hidden_size": 768, "num_hidden_layers": 12,
             "num_attention_heads": 12, "intermediate_size": 3072}


def test_flops_per_sequence_of_bert_base():
    # Counted by hand for BERT-Base, seq 128, 20 predictions (multiply-adds x 2 x 3):
    # encoder 128 * 12 * (4*768^2 + 2*768*3072 + 2*128*768), MLM head 20 * (768^2 +
    # 768*28996), pooler 768^2, NSP 2*768.
    macs = (128 * 12 * (4 * 768 ** 2 + 2 * 768 * 3072 + 2 * 128 * 768)
            + 20 * (768 ** 2 + 768 * 28996) + 768 ** 2 + 2 * 768)
    assert flops.flops_per_sequence(BERT_BASE) == 6 * macs
    assert 69e9 < 6 * macs < 71e9  # "about 70 GFLOP per sequence"


def test_peak_tflops_by_nvidia_smi_name():
    assert flops.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert flops.peak_tflops("NVIDIA A100-SXM4-40GB") == 312.0
    assert flops.peak_tflops("NVIDIA L40S") == 362.0  # the longer key, not "L4"'s 121
    assert flops.peak_tflops("Some Future GPU") is None
