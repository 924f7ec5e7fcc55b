"""optimization: LR schedule and AdamWeightDecay against an independent numpy reference
of Google's optimization.py (its formulas, op by op)."""
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


_REF_VARIABLE_SCENARIO = r"""
import json, sys
import numpy as np
import tensorflow as tf
tf1 = tf.compat.v1
tf1.disable_v2_behavior()  # as Google's own tests ran: reference variables
from bert import optimization

w = tf1.get_variable("w", shape=[3], initializer=tf1.constant_initializer([0.1, -0.2, -0.1]))
b = tf1.get_variable("layer/bias", shape=[3], initializer=tf1.zeros_initializer())
assert type(w).__name__ == "RefVariable", type(w)
x = tf.constant([0.4, 0.2, -0.5])
loss = tf.reduce_mean(tf.square(x - w - b))
tvars = tf1.trainable_variables()
grads = tf.gradients(loss, tvars)
global_step = tf1.train.get_or_create_global_step()
opt = optimization.AdamWeightDecayOptimizer(learning_rate=0.2, weight_decay_rate=0.01,
                                            exclude_from_weight_decay=["bias"])
train_op = opt.apply_gradients(zip(grads, tvars), global_step)
trace = []
with tf1.Session() as sess:
    sess.run([tf1.global_variables_initializer(), tf1.local_variables_initializer()])
    for _ in range(100):
        g, _ = sess.run([grads, train_op])
        trace.append([g[0].tolist(), g[1].tolist(), sess.run(w).tolist(), sess.run(b).tolist()])
json.dump(trace, sys.stdout)
"""


def test_reference_variables_use_googles_elementwise_update():
    """Under tf.disable_v2_behavior() variables are RefVariables (no `.handle` for the fused
    kernel): the optimizer falls back to Google's ops. Scenario of Google's own optimizer
    test (fit w to x by a mean squared error, 100 steps at lr 0.2), plus a bias excluded
    from weight decay, checked step by step against numpy."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-c", _REF_VARIABLE_SCENARIO], cwd=repo,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    trace = json.loads(res.stdout)
    w = np.array([0.1, -0.2, -0.1])
    b = np.zeros(3)
    m = {"w": np.zeros(3), "b": np.zeros(3)}
    v = {"w": np.zeros(3), "b": np.zeros(3)}
    for gw, gb, got_w, got_b in trace:
        for name, g, decay in (("w", np.array(gw), True), ("b", np.array(gb), False)):
            m[name] = 0.9 * m[name] + 0.1 * g
            v[name] = 0.999 * v[name] + 0.001 * g * g
            param = w if name == "w" else b
            update = m[name] / (np.sqrt(v[name]) + 1e-6) + (0.01 * param if decay else 0.0)
            if name == "w":
                w = w - 0.2 * update
            else:
                b = b - 0.2 * update
        np.testing.assert_allclose(got_w, w, atol=1e-5)
        np.testing.assert_allclose(got_b, b, atol=1e-5)
    # And it converged, as Google's test asserts: w + b fits x.
    np.testing.assert_allclose(np.array(trace[-1][2]) + trace[-1][3], [0.4, 0.2, -0.5],
                               rtol=1e-2, atol=1e-2)
