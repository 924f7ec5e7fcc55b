"""optimization: LR schedule and AdamWeightDecay against an independent numpy reference
of spec bert_model.md section 4 (Google's formulas, op by op)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bert import optimization

tf1 = tf.compat.v1


def ref_lr(step: int, init_lr: float, total: int, warmup: int) -> float:
    decayed = init_lr * (1.0 - min(step, total) / total)
    return init_lr * step / warmup if warmup and step < warmup else decayed


@pytest.mark.parametrize("warmup", [0, 3])
def test_learning_rate_schedule(warmup):
    total, init_lr = 10, 1e-3
    with tf.Graph().as_default():
        step = tf1.placeholder(tf.int64, [])
        lr = optimization.learning_rate_schedule(step, init_lr, total, warmup)
        with tf1.Session() as sess:
            got = [sess.run(lr, {step: s}) for s in range(total + 3)]
    want = [ref_lr(s, init_lr, total, warmup) for s in range(total + 3)]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)
    if warmup:  # after warmup it resumes at the decayed value, not init_lr
        assert got[warmup] == pytest.approx(init_lr * (1 - warmup / total))


def test_create_optimizer_matches_numpy_reference():
    """Five steps on a toy loss with a decayed kernel and an excluded bias/LayerNorm;
    includes global-norm clipping (the gradient norm is > 1)."""
    rng = np.random.default_rng(0)
    init = {"layer/dense/kernel": rng.normal(size=(4, 3)).astype(np.float32),
            "layer/dense/bias": rng.normal(size=(3,)).astype(np.float32),
            "layer/LayerNorm/gamma": rng.normal(size=(3,)).astype(np.float32)}
    x = rng.normal(size=(5, 4)).astype(np.float32) * 3
    init_lr, total, warmup, steps = 0.1, 8, 2, 5

    with tf.Graph().as_default():
        vs = {n: tf1.get_variable(n, initializer=v) for n, v in init.items()}
        h = tf.matmul(tf.constant(x), vs["layer/dense/kernel"]) + vs["layer/dense/bias"]
        loss = tf.reduce_sum(tf.square(h * vs["layer/LayerNorm/gamma"] - 1.0))
        grads_t = tf.gradients(loss, list(vs.values()))
        train_op = optimization.create_optimizer(loss, init_lr, total, warmup, False)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            got_grads, got_params = [], []
            for _ in range(steps):
                got_grads.append(sess.run(grads_t))
                sess.run(train_op)
                got_params.append(sess.run(vs))
            names = sorted(v.op.name for v in tf1.global_variables())
            step = sess.run(tf1.train.get_global_step())
    assert step == steps
    assert names == sorted(["global_step"] + [f"{n}{s}" for n in init for s in
                                              ("", "/adam_m", "/adam_v")])

    p = {n: v.astype(np.float64) for n, v in init.items()}
    m = {n: np.zeros_like(v) for n, v in p.items()}
    v2 = {n: np.zeros_like(v) for n, v in p.items()}
    for s in range(steps):
        g = dict(zip(init, got_grads[s]))  # gradients at the current weights (from TF)
        norm = np.sqrt(sum((gg.astype(np.float64) ** 2).sum() for gg in g.values()))
        scale = 1.0 / max(norm, 1.0)
        lr = ref_lr(s, init_lr, total, warmup)
        for n in p:
            gg = g[n] * scale
            m[n] = 0.9 * m[n] + 0.1 * gg
            v2[n] = 0.999 * v2[n] + 0.001 * gg ** 2
            update = m[n] / (np.sqrt(v2[n]) + 1e-6)
            if "bias" not in n and "LayerNorm" not in n:
                update = update + 0.01 * p[n]
            p[n] = p[n] - lr * update
        for n in p:
            np.testing.assert_allclose(got_params[s][n], p[n], atol=3e-5, err_msg=f"{n} step {s}")  # f32 vs f64
    # Step 0 has lr 0 (warmup), so weights only move from step 1 on.
    np.testing.assert_array_equal(got_params[0]["layer/dense/kernel"], init["layer/dense/kernel"])
    assert np.abs(got_params[-1]["layer/dense/kernel"] - init["layer/dense/kernel"]).max() > 1e-3


def test_dynamic_loss_scale_skips_non_finite_steps():
    with tf.Graph().as_default():
        w = tf1.get_variable("w/kernel", initializer=np.float32([1.0, 2.0]))
        big = tf1.placeholder(tf.float32, [])
        loss = tf.reduce_sum(w * big)
        train_op = optimization.create_optimizer(loss, 0.1, 10, 0, False, dynamic_loss_scale=True)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            scale = [v for v in tf1.global_variables() if v.op.name == "loss_scale"][0]
            sess.run(train_op, {big: 1.0})
            after_good = sess.run(w)
            assert np.abs(after_good - [1.0, 2.0]).max() > 1e-3
            assert sess.run(scale) == 2.0 ** 15
            sess.run(train_op, {big: np.inf})  # overflow: no change, scale halves
            np.testing.assert_array_equal(sess.run(w), after_good)
            assert sess.run(scale) == 2.0 ** 14
            assert sess.run(tf1.train.get_global_step()) == 2
