"""Golden test: our modeling/optimization/heads reproduce Google BERT's numbers exactly.

Procedure of ../shared/golden/model/README.md: batch size 8, records in file order;
batch 0 forward with is_training=False; then 3 steps of
create_optimizer(loss, 1e-3, 100, 2, False) on batches 1-3, weights from init.ckpt.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from bert import modeling, optimization, run_pretraining
from bert.pretraining_data import input_fn_builder

tf1 = tf.compat.v1
TOL = 1e-4


def _build(golden_model, compute_type=tf.float32):
    """Golden graph: returns (graph, fetches dict, train_op)."""
    config = modeling.BertConfig.from_json_file(str(golden_model / "bert_config.json"))
    graph = tf.Graph()
    with graph.as_default():
        ds = input_fn_builder([str(golden_model / "input.tfrecord")], 128, 20, is_training=False)(
            {"batch_size": 8})
        f = tf1.data.make_one_shot_iterator(ds).get_next()
        model = modeling.BertModel(config, False, f["input_ids"], f["input_mask"],
                                   f["segment_ids"], compute_type=compute_type)
        mlm_loss, _, mlm_logp = run_pretraining.get_masked_lm_output(
            config, model.get_sequence_output(), model.get_embedding_table(),
            f["masked_lm_positions"], f["masked_lm_ids"], f["masked_lm_weights"])
        nsp_loss, _, nsp_logp = run_pretraining.get_next_sentence_output(
            config, model.get_pooled_output(), f["next_sentence_labels"])
        loss = mlm_loss + nsp_loss
        tvars = tf1.trainable_variables()
        amap, _ = modeling.get_assignment_map_from_checkpoint(tvars, str(golden_model / "init.ckpt"))
        assert len(amap) == len(tvars)
        tf1.train.init_from_checkpoint(str(golden_model / "init.ckpt"), amap)
        train_op = optimization.create_optimizer(loss, 1e-3, 100, 2, False)
        fetches = {"seq_out": model.get_sequence_output(), "pooled": model.get_pooled_output(),
                   "mlm_logp": mlm_logp, "nsp_logp": nsp_logp, "loss": loss}
    return graph, fetches, train_op


@pytest.fixture(scope="module")
def golden_run(golden_model):
    graph, fetches, train_op = _build(golden_model)
    with tf1.Session(graph=graph) as sess:
        sess.run(tf1.global_variables_initializer())
        out0 = sess.run(fetches)
        losses = [sess.run([train_op, fetches["loss"]])[1] for _ in range(3)]
        with graph.as_default():
            variables = {v.op.name: v for v in tf1.global_variables()}
        after = sess.run(variables)
    return out0, losses, after


def test_forward_matches_golden(golden_model, golden_run):
    expected = np.load(golden_model / "golden_outputs.npz")
    golden = json.loads((golden_model / "golden.json").read_text())
    out0, _, _ = golden_run
    for key in ("seq_out", "pooled", "mlm_logp", "nsp_logp"):
        assert out0[key].shape == expected[key].shape, key
        np.testing.assert_allclose(out0[key], expected[key], atol=TOL, rtol=0, err_msg=key)
    assert abs(out0["loss"] - golden["loss0"]) < TOL


def test_three_training_steps_match_golden(golden_model, golden_run):
    expected = np.load(golden_model / "golden_outputs.npz")
    golden = json.loads((golden_model / "golden.json").read_text())
    _, losses, after = golden_run
    np.testing.assert_allclose(losses, golden["losses"], atol=TOL, rtol=0)
    assert sorted(after) == sorted(golden["variables"])
    assert int(after["global_step"]) == golden["step"] == 3
    for name in golden["variables"]:
        want = expected["after/" + name]
        got = after[name]
        assert np.shape(got) == np.shape(want), name
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0, err_msg=name)
    # The update moved the weights (so the comparison above is not trivially true).
    init = tf.train.load_variable(str(golden_model / "init.ckpt"), "bert/embeddings/word_embeddings")
    assert np.abs(after["bert/embeddings/word_embeddings"] - init).max() > 1e-4


@pytest.mark.parametrize("dtype,tol", [("bfloat16", 0.08), ("float16", 0.02)])
def test_mixed_precision_forward_close_to_fp32(golden_model, dtype, tol):
    """AMP: same variables (float32), loss close to the fp32 golden loss."""
    golden = json.loads((golden_model / "golden.json").read_text())
    graph, fetches, _ = _build(golden_model, compute_type=getattr(tf, dtype))
    with tf1.Session(graph=graph) as sess:
        sess.run(tf1.global_variables_initializer())
        out0 = sess.run(fetches)
        with graph.as_default():
            dtypes = {v.op.name: v.dtype.base_dtype for v in tf1.global_variables()}
    assert sorted(dtypes) == sorted(golden["variables"])
    assert all(d in (tf.float32, tf.int64) for d in dtypes.values())
    assert abs(out0["loss"] - golden["loss0"]) < tol
    assert out0["loss"] != golden["loss0"]  # it really computed in low precision
