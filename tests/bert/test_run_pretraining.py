"""run_pretraining: CLI, checkpoints, resume after SIGKILL, eval, XLA/AMP, bad input.

Uses a tiny config (1 layer, hidden 32, no dropout) over the golden model's records
(128 / 20, vocab 627) so every run takes seconds.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bert import run_pretraining as rp
from bert.tfrecord_codec import iter_records, parse_example, serialize_example
from tests.helpers import read_batch
from utils.cli import UserError

REPO = Path(__file__).resolve().parents[2]
TINY = {"vocab_size": 627, "hidden_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02}


@pytest.fixture(scope="module")
def records(golden_model) -> str:
    return str(golden_model / "input.tfrecord")


@pytest.fixture()
def tiny_config(tmp_path) -> str:
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(TINY))
    return str(path)


def _args(config: str, records: str, out: Path, **extra) -> list[str]:
    flags = {"bert_config_file": config, "input_file": records, "output_dir": str(out),
             "do_train": True, "train_batch_size": 4, "num_train_steps": 6,
             "num_warmup_steps": 2, "learning_rate": 1e-3, "save_checkpoints_steps": 3,
             "log_every_n_steps": 3} | extra
    return [f"--{k}={v}" for k, v in flags.items()]


def _cli(args: list[str], env: dict | None = None, timeout: int = 120):
    return subprocess.run([sys.executable, "-m", "bert.run_pretraining", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def _opts(config: str, records: str, out: Path, **extra) -> rp.Options:
    base = dict(bert_config_file=config, input_file=records, output_dir=str(out),
                do_train=True, train_batch_size=4, num_train_steps=6, num_warmup_steps=2,
                learning_rate=1e-3, save_checkpoints_steps=3, log_every_n_steps=3)
    return rp.Options(**(base | extra))


def _variables(ckpt: str) -> dict:
    return {name: tf.train.load_variable(ckpt, name) for name, _ in tf.train.list_variables(ckpt)}


def _schedule(step: int, lr: float, total: int, warmup: int) -> float:
    """Google's create_optimizer schedule (warm-up replacing a linear decay from step 0),
    computed independently in Python."""
    return lr * step / warmup if step < warmup else lr * (1 - min(step, total) / total)


@pytest.mark.slow
def test_resume_after_sigkill_continues_to_the_same_result(tiny_config, records, tmp_path):
    total, every = 80, 10
    out = tmp_path / "killed"
    args = _args(tiny_config, records, out, num_train_steps=total, num_warmup_steps=5,
                 save_checkpoints_steps=every, log_every_n_steps=every)
    proc = subprocess.Popen([sys.executable, "-m", "bert.run_pretraining", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        # The `checkpoint` state file is written (atomically) after a checkpoint's index:
        # killing once it exists leaves a complete checkpoint to resume from.
        if (out / "checkpoint").exists():
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = int(tf.train.load_variable(tf.train.latest_checkpoint(str(out)), "global_step"))
    assert 0 < killed_at < total, "the run must be killed mid-training"

    res = _cli(args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"Resuming from" in res.stderr and f"(global_step {killed_at})" in res.stderr
    logged = [(int(m[1]), float(m[2])) for m in
              re.finditer(r"^step (\d+)/\d+: loss \S+, lr ([0-9.e-]+)", res.stderr, re.M)]
    assert logged and logged[0][0] == (killed_at // every + 1) * every  # did not restart at 0
    for step, lr in logged:  # the LR schedule continued
        assert lr == pytest.approx(_schedule(step, 1e-3, total, 5), rel=1e-3, abs=1e-9)
    final = tf.train.latest_checkpoint(str(out))
    assert final.endswith(f"model.ckpt-{total}")
    resumed = _variables(final)
    assert resumed["global_step"] == total

    # Same command uninterrupted (in-process): identical weights, since the resumed run
    # skips the batches already seen and this config has no dropout.
    ref_out = tmp_path / "uninterrupted"
    rp.run(_opts(tiny_config, records, ref_out, num_train_steps=total, num_warmup_steps=5,
                 save_checkpoints_steps=every, log_every_n_steps=every))
    ref = _variables(tf.train.latest_checkpoint(str(ref_out)))
    assert sorted(ref) == sorted(resumed)
    for name in ref:
        np.testing.assert_allclose(resumed[name], ref[name], atol=1e-5, err_msg=name)

    # Rerunning a finished run does nothing and keeps the checkpoint.
    mtime = Path(final + ".index").stat().st_mtime
    assert rp.run(_opts(tiny_config, records, out, num_train_steps=total)) == {"global_step": total}
    assert Path(final + ".index").stat().st_mtime == mtime


def test_outputs_checkpoint_names_eval_summaries_config(tiny_config, records, tmp_path, golden_model):
    out = tmp_path / "run"
    _, stderr = _in_process(_opts(tiny_config, records, out, do_eval=True, max_eval_steps=3,
                                  keep_checkpoint_max=1))
    # keep_checkpoint_max=1: only the last; Google-style state file, relative paths.
    assert sorted(p.name for p in out.glob("model.ckpt-*.index")) == ["model.ckpt-6.index"]
    assert (out / "checkpoint").read_text().splitlines()[0] == 'model_checkpoint_path: "model.ckpt-6"'
    variables = dict(tf.train.list_variables(str(out / "model.ckpt-6")))
    golden = json.loads((golden_model / "golden.json").read_text())
    expect = {n for n in golden["variables"] if "layer_1" not in n}  # 1 layer vs 2
    assert set(variables) == expect
    # Progress lines: steps/s, examples/s, ETA.
    assert re.search(r"^step 3/6: loss [0-9.]+, lr [0-9.e-]+, [0-9.]+ steps/s, [0-9.]+ examples/s;"
                     r".*ETA", stderr, re.M)
    # eval_results.txt: Google's keys, sorted, "key = value".
    lines = (out / "eval_results.txt").read_text().splitlines()
    keys = [line.split(" = ")[0] for line in lines]
    assert keys == ["global_step", "loss", "masked_lm_accuracy", "masked_lm_loss",
                    "next_sentence_accuracy", "next_sentence_loss"]
    values = {k: float(v.split(" = ")[1]) for k, v in zip(keys, lines)}
    assert values["global_step"] == 6
    assert values["loss"] == pytest.approx(
        values["masked_lm_loss"] + values["next_sentence_loss"], rel=0.05)
    assert 0 <= values["masked_lm_accuracy"] <= 1 and 0 <= values["next_sentence_accuracy"] <= 1
    # TensorBoard scalars.
    tags = set()
    for event_file in out.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in event.summary.value)
    assert {"loss", "learning_rate", "masked_lm_accuracy", "next_sentence_accuracy"} <= tags
    config = json.loads((out / "training_config.json").read_text())
    assert config["bert_config"] == TINY
    assert config["flags"]["train_batch_size"] == 4 and config["flags"]["keep_checkpoint_max"] == 1


def test_eval_metrics_match_numpy_reference(tiny_config, records, tmp_path, golden_model):
    """Eval on the golden checkpoint (golden config) against an independent numpy
    computation from the golden log-probs of batch 0."""
    gold = golden_model
    out = tmp_path / "eval"
    result = rp.run(_opts(str(gold / "bert_config.json"), records, out, do_train=False,
                          do_eval=True, eval_batch_size=8, max_eval_steps=1,
                          init_checkpoint=str(gold / "init.ckpt")))["eval"]
    logp = np.load(gold / "golden_outputs.npz")["mlm_logp"]
    nsp = np.load(gold / "golden_outputs.npz")["nsp_logp"]
    feats = read_batch(records, 8)
    ids, w = feats["masked_lm_ids"].reshape(-1), feats["masked_lm_weights"].reshape(-1)
    per = -logp[np.arange(len(ids)), ids]
    assert result["masked_lm_loss"] == pytest.approx((per * w).sum() / w.sum(), abs=1e-4)
    assert result["masked_lm_accuracy"] == pytest.approx(
        ((logp.argmax(-1) == ids) * w).sum() / w.sum(), abs=1e-6)
    labels = feats["next_sentence_labels"].reshape(-1)
    assert result["next_sentence_accuracy"] == pytest.approx((nsp.argmax(-1) == labels).mean())
    golden = json.loads((gold / "golden.json").read_text())
    assert result["loss"] == pytest.approx(golden["loss0"], abs=1e-4)
    assert result["global_step"] == 0


@pytest.fixture(scope="module")
def fp32_reference(golden_model, tmp_path_factory):
    """3 fp32 steps of the tiny config, CLI: (variables, logged loss)."""
    tmp = tmp_path_factory.mktemp("fp32")
    config = tmp / "bert_config.json"
    config.write_text(json.dumps(TINY))
    records = str(golden_model / "input.tfrecord")
    return _short_run(str(config), records, tmp / "out", {})


def _in_process(opts: rp.Options) -> tuple[dict, str]:
    """rp.run with stderr captured (faster than the CLI: no TF start-up)."""
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        result = rp.run(opts)
    return result, buf.getvalue()


def _short_run(config: str, records: str, out: Path, extra: dict):
    """3 steps; XLA through the CLI (TF_XLA_FLAGS must be set before TF starts), the rest
    in-process."""
    flags = dict(num_train_steps=3, save_checkpoints_steps=3, num_warmup_steps=0, **extra)
    if extra.get("use_xla"):
        # TF's C++ INFO log says "Compiled cluster using XLA"; run_tests.sh silences it by default.
        res = _cli(_args(config, records, out, **flags), env={"TF_CPP_MIN_LOG_LEVEL": "0"})
        assert res.returncode == 0, res.stderr[-2000:]
        stderr = res.stderr
    else:
        stderr = _in_process(_opts(config, records, out, **flags))[1]
    loss = float(re.search(r"^step 3/3: loss ([0-9.]+)", stderr, re.M)[1])
    return _variables(str(out / "model.ckpt-3")), loss, stderr


@pytest.mark.parametrize("extra", [
    pytest.param({"use_xla": True}, marks=pytest.mark.slow),
    {"use_amp": True, "amp_dtype": "bfloat16"},
    {"use_amp": True, "amp_dtype": "float16"},
], ids=["xla", "amp_bf16", "amp_fp16"])
def test_xla_and_amp_train_and_keep_float32_checkpoints(tiny_config, records, tmp_path, extra,
                                                         fp32_reference):
    ref, ref_loss, _ = fp32_reference
    got, loss, stderr = _short_run(tiny_config, records, tmp_path / "fast", extra)
    if extra.get("use_xla"):
        assert "Compiled cluster using XLA" in stderr  # XLA really ran
    extras = {"loss_scale", "loss_scale_good_steps"} if extra.get("amp_dtype") == "float16" else set()
    assert set(got) == set(ref) | extras
    for name, value in ref.items():
        assert got[name].dtype == value.dtype, name  # float32 master weights, int64 step
    assert got["global_step"] == 3
    if extra.get("use_xla"):  # same arithmetic up to fusion order
        assert loss == pytest.approx(ref_loss, abs=1e-4)
        for name in ref:
            np.testing.assert_allclose(got[name], ref[name], atol=1e-4, err_msg=name)
    else:  # low precision: close, not equal (Adam's normalised steps are ~lr each)
        assert loss == pytest.approx(ref_loss, abs=0.05)
        for name in ref:
            np.testing.assert_allclose(got[name], ref[name], atol=1e-2, err_msg=name)


def test_non_finite_loss_stops_loudly_and_keeps_last_good_checkpoint(tiny_config, records, tmp_path):
    out = tmp_path / "nan"
    with pytest.raises(rp.NonFiniteLossError) as info:
        _in_process(_opts(tiny_config, records, out, learning_rate=1e30, num_warmup_steps=0,
                          num_train_steps=20, save_checkpoints_steps=1))
    msg = str(info.value)
    m = re.match(r"non-finite loss \(\S+\) at step (\d+); .*"
                 r"last good checkpoint in .*: model\.ckpt-(\d+)$", msg)
    assert m, msg
    bad, good = int(m[1]), int(m[2])
    assert good == bad - 1
    assert tf.train.latest_checkpoint(str(out)).endswith(f"model.ckpt-{good}")
    assert not list(out.glob(f"model.ckpt-{bad}.*"))


# ---------------------------------------------------------------------------- bad input


def _expect_error(opts: rp.Options, *fragments: str) -> str:
    with pytest.raises(UserError) as info:
        rp.run(opts)
    msg = str(info.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def test_bad_config_files(tmp_path, records):
    out = tmp_path / "out"
    missing = tmp_path / "nope.json"
    _expect_error(_opts(str(missing), records, out), str(missing), "not found")
    broken = tmp_path / "broken.json"
    broken.write_text('{"vocab_size": 627,\n "hidden_size": }')
    _expect_error(_opts(str(broken), records, out), str(broken), "not valid JSON", "line 2")
    for key, value in (("num_attention_heads", None), ("hidden_act", "swishy"),
                       ("hidden_size", "32")):
        cfg = dict(TINY)
        if value is None:
            del cfg[key]
        else:
            cfg[key] = value
        path = tmp_path / f"bad_{key}.json"
        path.write_text(json.dumps(cfg))
        _expect_error(_opts(str(path), records, out), str(path), f"'{key}'")
    small = tmp_path / "small.json"
    small.write_text(json.dumps(TINY | {"max_position_embeddings": 64}))
    _expect_error(_opts(str(small), records, out), "--max_seq_length=128",
                  "max_position_embeddings=64", str(small))
    assert not out.exists() or not any(out.iterdir())


def test_record_lengths_disagreeing_with_flags(tiny_config, records, tmp_path):
    out = tmp_path / "out"
    # The published clinical scripts' mistake: 22 predictions for records made with 20.
    _expect_error(_opts(tiny_config, records, out, max_predictions_per_seq=22),
                  records, "masked_lm_positions", "length 20", "--max_predictions_per_seq=20")
    _expect_error(_opts(tiny_config, records, out, max_seq_length=64),
                  records, "input_ids", "length 128", "--max_seq_length=128")
    assert not out.exists()


def test_missing_inputs_and_unwritable_output(tiny_config, records, tmp_path):
    _expect_error(_opts(tiny_config, f"{tmp_path}/none-*.tfrecord,{records}", tmp_path / "o"),
                  "input glob matches no file", "none-*.tfrecord")
    blocker = tmp_path / "file"
    blocker.write_text("")
    _expect_error(_opts(tiny_config, records, blocker / "out"), "--output_dir=", "not writable")
    _expect_error(_opts(tiny_config, records, tmp_path / "o",
                        init_checkpoint=str(tmp_path / "nockpt")), "nockpt", "not found")


def test_config_checkpoint_mismatch_fails_cleanly_via_cli(tiny_config, records, tmp_path, golden_model):
    """Tiny config (hidden 32) + golden checkpoint (hidden 64): one-line error naming the
    variable and both shapes, exit 1, and an existing output_dir left untouched."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    res = _cli(_args(tiny_config, records, out,
                     init_checkpoint=golden_model / "init.ckpt"))
    assert res.returncode == 1
    msg = res.stderr.strip().splitlines()[-1]
    assert msg.startswith("run_pretraining: error: --init_checkpoint ")
    assert re.search(r"variable 'bert/\S+' has shape \[\d+(, \d+)*\] in the checkpoint but "
                     r"\[\d+(, \d+)*\] in the model", msg), msg
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"


def test_corrupt_record_mid_file_stops_with_step_and_keeps_checkpoints(tiny_config, records,
                                                                        tmp_path):
    """A record whose bytes were damaged after the first one: a clear error naming the
    step, earlier checkpoints kept, none written for the failed step."""
    data = bytearray(Path(records).read_bytes())
    data[len(data) // 10: len(data) // 10 + 64] = bytes(64)
    bad = tmp_path / "corrupt.tfrecord"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(rp.TrainingError, match=r"training failed at step (\d+) \(DataLossError"):
        _in_process(_opts(tiny_config, str(bad), out, num_train_steps=1000,
                          save_checkpoints_steps=5, log_every_n_steps=50,
                          iterations_per_loop=1))
    kept = tf.train.latest_checkpoint(str(out))
    assert kept is not None and int(kept.rsplit("-", 1)[1]) % 5 == 0


# ---------------------------------------------------------------------------- issue 9


def _records_with_small_first_record(records: str, path: Path, cap: int) -> None:
    """The golden records, with record 0's token ids clipped below `cap` (so the check of
    record 0 before training passes and the error only shows while training)."""
    raws = list(iter_records(records))
    first = parse_example(raws[0])
    for name in ("input_ids", "masked_lm_ids"):
        first[name] = [min(v, cap - 1) for v in first[name]]
    with tf.io.TFRecordWriter(str(path)) as w:
        w.write(serialize_example(first, feature_order=tuple(first)))
        for raw in raws[1:]:
            w.write(raw)


@pytest.mark.slow
def test_token_ids_beyond_vocab_size(tmp_path, records):
    """Records made with a larger vocabulary than the config's: refused before training
    when record 0 shows it; otherwise TF's useful line plus the likely cause, one line,
    exit 1 (not "Graph execution error:")."""
    config = tmp_path / "small_vocab.json"
    config.write_text(json.dumps(TINY | {"vocab_size": 600}))
    _expect_error(_opts(str(config), records, tmp_path / "o1"), records,
                  "feature 'input_ids' holds token id 626 >= vocab_size 600")
    sneaky = tmp_path / "sneaky.tfrecord"
    _records_with_small_first_record(records, sneaky, 600)
    res = _cli(_args(str(config), str(sneaky), tmp_path / "o2", iterations_per_loop=1))
    assert res.returncode == 1, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"run_pretraining: error: training failed at step \d+ \(InvalidArgumentError: "
        r"indices\[[\d,]+\] = (6[0-9]{2}) is not in \[0, 600\)\); likely cause: token id \1 >= "
        r"vocab_size 600: the records were made with a larger vocabulary than "
        r"bert_config_file's vocab_size", last), last
    assert "Graph execution error" not in res.stderr and "Traceback" not in res.stderr


def test_corrupt_init_checkpoint_is_one_line(tiny_config, records, tmp_path, golden_model):
    bad = tmp_path / "init"
    bad.mkdir()
    for f in golden_model.glob("init.ckpt.*"):
        data = f.read_bytes()
        (bad / f.name).write_bytes(data[: len(data) // 2] if "data" in f.name else data)
    res = _cli(_args(tiny_config, records, tmp_path / "out", init_checkpoint=bad / "init.ckpt"))
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"run_pretraining: error: --init_checkpoint={bad / 'init.ckpt'}: "
                           "checkpoint unreadable ("), last
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_help_lists_every_flag_with_its_help_and_no_banners(tiny_config, records, tmp_path):
    res = _cli(["--help"])
    assert res.returncode == 0, res.stderr[-2000:]
    text = res.stdout
    for name in ("num_devices", "worker_hosts", "task_index", "iterations_per_loop",
                 "train_batch_size", "use_amp", "keep_checkpoint_max"):
        m = re.search(rf"^  --(\[no\])?{name}: (.+)$", text, re.M)
        assert m and len(m[2]) > 10, name
    assert "(default: '1000')" in text and "(default: '32')" in text
    # TensorFlow's start-up banners are not shown by default.
    run = _cli(_args(tiny_config, records, tmp_path / "out", num_train_steps=1),
               env={"TF_CPP_MIN_LOG_LEVEL": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "oneDNN custom operations" not in run.stderr
    assert "absl::InitializeLog" not in run.stderr


def test_loop_length_bounded_by_checkpoints_logs_and_time():
    opts = rp.Options("c", "i", "o", num_train_steps=1000, save_checkpoints_steps=100,
                      log_every_n_steps=40, iterations_per_loop=1000)
    from bert import distribute, train_loop
    one = distribute.Layout()
    assert train_loop._next_chunk(0, opts, None, one) == 1         # first call: one step
    assert train_loop._next_chunk(1, opts, 0.001, one) == 39       # up to the log step 40
    assert train_loop._next_chunk(80, opts, 0.001, one) == 20      # up to checkpoint 100
    assert train_loop._next_chunk(80, opts, 2.0, one) == 15        # ~30 s per call
    assert train_loop._next_chunk(80, opts, 100.0, one) == 1
    two = distribute.Layout(worker_hosts=("a:1", "b:2"))
    assert train_loop._next_chunk(80, opts, 100.0, two) == 20      # same on every worker
    assert train_loop._next_chunk(999, opts, 0.001, one) == 1      # the end


def test_full_disk_while_saving_is_one_line(tiny_config, records, tmp_path):
    """A disk that fills up (simulated with RLIMIT_FSIZE: writes beyond 60 kB fail with
    EFBIG, like ENOSPC) while a checkpoint is written: one line naming the folder and the
    OS error, exit 1, no partial checkpoint left."""
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "bert.run_pretraining",
                          *_args(tiny_config, records, out, num_train_steps=3)],
                         cwd=REPO, capture_output=True, text=True, timeout=120,
                         preexec_fn=small_files)
    assert res.returncode == 1, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"run_pretraining: error: {re.escape(str(out))}: cannot write "
                        r"checkpoint model\.ckpt-3 \(\S+; File too large\)", last), last
    assert "Traceback" not in res.stderr
    assert not list(out.glob("model.ckpt-*")) and not (out / "checkpoint").exists()


def test_every_option_is_a_flag_with_the_same_default():
    """The flags are generated from Options: each field is a flag of the field's default
    (None for the three required paths), with a help line, and nothing else is a flag but
    Google's ignored TPU flags and the informational do_lower_case."""
    import dataclasses

    from absl import flags

    fv = flags.FlagValues()
    rp.define_flags(fv)
    for table in (rp.Options, rp.IgnoredFlags):
        for field in dataclasses.fields(table):
            expected = None if field.default is dataclasses.MISSING else field.default
            assert fv[field.name].default == expected, field.name
            assert fv[field.name].help.endswith(field.metadata["help"]), field.name  # enums: "<a|b>: " first
    fields = {f.name for t in (rp.Options, rp.IgnoredFlags) for f in dataclasses.fields(t)}
    assert set(fv) == fields
    assert fv["amp_dtype"].parser.enum_values == ["float16", "bfloat16"]
    # Google's defaults, as users' command lines expect them.
    assert (fv["num_train_steps"].default, fv["save_checkpoints_steps"].default,
            fv["learning_rate"].default, fv["max_predictions_per_seq"].default) == (100000, 1000, 5e-5, 20)


def test_flag_parsed_options_equal_the_dataclass_defaults():
    from absl import flags

    fv = flags.FlagValues()
    rp.define_flags(fv)
    fv(["run_pretraining", "--bert_config_file=c", "--input_file=i", "--output_dir=o"])
    assert rp.options_from_flags(fv) == rp.Options("c", "i", "o")
    fv.unparse_flags()
    fv(["run_pretraining", "--bert_config_file=c", "--input_file=i", "--output_dir=o",
        "--learning_rate=0.001", "--use_amp", "--amp_dtype=float16", "--num_train_steps=7"])
    assert rp.options_from_flags(fv) == rp.Options("c", "i", "o", learning_rate=0.001, use_amp=True,
                                                   amp_dtype="float16", num_train_steps=7)
