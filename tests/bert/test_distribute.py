"""Training over several devices / workers and in loops gives the single-device result.

The golden model (2 layers, hidden 64, vocab 627; ../shared/golden/model) with dropout 0,
global batch 8, from its init checkpoint: every variant must end within 1e-5 of one
device, one step per session call (weights and Adam slots), with the same variable names.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
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

from bert import distribute, run_pretraining as rp, train_loop
from tests.helpers import listeners

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-5


@pytest.fixture(scope="module")
def config0(golden_model, tmp_path_factory) -> str:
    """The golden config with dropout 0 (so that runs are comparable)."""
    cfg = json.loads((golden_model / "bert_config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    path = tmp_path_factory.mktemp("cfg") / "bert_config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def _flags(config0: str, golden_model: Path, out: Path, **extra) -> dict:
    return {"bert_config_file": config0, "input_file": str(golden_model / "input.tfrecord"),
            "output_dir": str(out), "do_train": True, "train_batch_size": 8,
            "num_train_steps": 3, "num_warmup_steps": 1, "learning_rate": 1e-3,
            "save_checkpoints_steps": 3, "log_every_n_steps": 3,
            "init_checkpoint": str(golden_model / "init.ckpt")} | extra


def _run(config0, golden_model, out, **extra) -> str:
    """In-process run (stderr captured); returns stderr."""
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rp.run(rp.Options(**_flags(config0, golden_model, out, **extra)))
    return buf.getvalue()


def _variables(folder: Path) -> dict:
    ckpt = tf.train.latest_checkpoint(str(folder))
    return {n: tf.train.load_variable(ckpt, n) for n, _ in tf.train.list_variables(ckpt)}


def _assert_same(got: dict, ref: dict, tol: float = TOL) -> None:
    assert sorted(got) == sorted(ref)  # exactly the single-device names, slots included
    assert any(n.endswith("/adam_m") for n in ref) and "global_step" in ref
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], atol=tol, rtol=0, err_msg=name)


@pytest.fixture(scope="module")
def single(config0, golden_model, tmp_path_factory) -> dict:
    """3 steps, one device, one step per session call: the reference."""
    out = tmp_path_factory.mktemp("single")
    _run(config0, golden_model, out, iterations_per_loop=1)
    return _variables(out)


# ---------------------------------------------------------------------------- loops


def test_iterations_per_loop_gives_the_weights_of_one_step_per_call(config0, golden_model,
                                                                    single, tmp_path, monkeypatch):
    calls = []
    real = train_loop.run_reporting_errors

    def record(sess, fetches, feed, first, last, vocab_size):
        calls.append((first, last))
        return real(sess, fetches, feed, first, last, vocab_size)

    monkeypatch.setattr(train_loop, "run_reporting_errors", record)
    _run(config0, golden_model, tmp_path / "loop", iterations_per_loop=100)
    assert calls == [(1, 1), (2, 3)]  # one step (it sizes the loops), then a 2-step loop
    got = _variables(tmp_path / "loop")
    _assert_same(got, single, tol=1e-6)
    assert got["global_step"] == 3


@pytest.mark.slow
def test_loop_resume_and_a_damaged_newest_checkpoint(config0, golden_model, tmp_path, caplog):
    """Loops stop at checkpoints; a run resumed from an older checkpoint, because the newest
    is damaged (a disk filled up while it was written), ends where the uninterrupted run
    ended."""
    flags = dict(num_train_steps=7, save_checkpoints_steps=3, log_every_n_steps=7,
                 iterations_per_loop=100)
    ref_dir, out = tmp_path / "ref", tmp_path / "run"
    _run(config0, golden_model, ref_dir, **flags)
    ref = _variables(ref_dir)
    _run(config0, golden_model, out, **flags)
    data = out / "model.ckpt-7.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    _run(config0, golden_model, out, **flags)
    assert re.search(r"skipped the unreadable checkpoint \S*model\.ckpt-7 \(Read less bytes "
                     r"than requested\); resuming from \S*model\.ckpt-6", caplog.text), \
        caplog.text[-2000:]
    _assert_same(_variables(out), ref)  # resumed: other loop boundaries, last bits differ


@pytest.mark.slow
def test_raising_num_train_steps_continues_a_finished_run(config0, golden_model, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "run"
    _run(config0, golden_model, out, num_train_steps=2)
    _run(config0, golden_model, out, num_train_steps=4)
    assert tf.train.latest_checkpoint(str(out)).endswith("model.ckpt-4")
    assert re.search(r"--num_train_steps=4 \(was 2 .*\): training continues from the last "
                     r"checkpoint, and the learning-rate schedule is the one of the new total",
                     caplog.text)
    assert "Resuming from" in caplog.text and "(global_step 2)" in caplog.text


# ---------------------------------------------------------------------------- devices


def test_two_devices_in_one_process_equal_one_device(config0, golden_model, single, tmp_path):
    _run(config0, golden_model, tmp_path / "two", num_devices=2, iterations_per_loop=1)
    _assert_same(_variables(tmp_path / "two"), single)


def test_replicas_in_one_process_share_one_set_of_variables(config0, golden_model):
    """The trap of wrapping a model_fn in a strategy: per-replica copies that the optimizer
    updates separately and that silently drift. Here the replicas read one set of
    variables (the single-device names, no copies), so there is nothing to drift."""
    opts = rp.Options(**_flags(config0, golden_model, "/nonexistent", num_devices=2))
    bert_config = rp.modeling.BertConfig.from_json_file(config0)
    layout = distribute.Layout(num_local=2)
    tg = train_loop.build_graph(opts, bert_config, [str(golden_model / "input.tfrecord")], None, 0,
                                layout)
    with tg.graph.as_default():
        names = [v.op.name for v in tf.compat.v1.global_variables()]
    one = train_loop.build_graph(opts, bert_config, [str(golden_model / "input.tfrecord")], None, 0,
                                 distribute.Layout())
    with one.graph.as_default():
        single_names = [v.op.name for v in tf.compat.v1.global_variables()]
    assert sorted(names) == sorted(single_names) and len(set(names)) == len(names)
    # Both replicas' forward passes are in the graph, on two devices.
    devices = {op.device for op in tg.graph.get_operations() if op.type == "BatchMatMulV2"}
    assert {d.split("device:")[-1] for d in devices if d} >= {"CPU:0", "CPU:1"}


def test_global_batch_must_split_evenly(config0, golden_model, tmp_path):
    with pytest.raises(rp.UserError, match=r"--train_batch_size=8 \(the global batch\) must be "
                                           r"a multiple of the 3 replicas"):
        _run(config0, golden_model, tmp_path / "o", num_devices=3)


def test_layout_from_flags_and_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    lay = distribute.make_layout(1, "h1:1000,h2:1001", 1)
    assert (lay.num_workers, lay.task_index, lay.is_chief) == (2, 1, False)
    assert lay.replica_device(0) == "/job:worker/replica:0/task:1/device:CPU:0"
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker", "index": 2}}))
    lay = distribute.make_layout(2)
    assert (lay.num_workers, lay.task_index, lay.num_replicas) == (3, 2, 6)
    assert lay.first_replica() == 4
    with pytest.raises(distribute.DistributeError, match="task_index=5 is not in"):
        distribute.make_layout(1, "h1:1,h2:2", 5)
    with pytest.raises(distribute.DistributeError, match="'h1' is not HOST:PORT"):
        distribute.make_layout(1, "h1,h2:2", 0)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(distribute.DistributeError, match="TF_CONFIG is not a valid"):
        distribute.make_layout(1)


# ---------------------------------------------------------------------------- workers


def _namespaces_available() -> bool:
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_netns = pytest.mark.skipif(
    not _namespaces_available(),
    reason="needs `unshare -rn` (user + network namespaces): TF's gRPC server listens on "
           "every interface, so the workers are only started where loopback is all they see")


class Workers:
    """`python -m bert.launch_workers --private_network` with its output collected."""

    def __init__(self, flags: dict) -> None:
        args = [f"--{k}={v}" for k, v in flags.items()]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bert.launch_workers", "--num_workers", "2",
             "--private_network", "--", *args], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        self.lines: list[str] = []
        self.pids: dict[int, int] = {}
        self.ports: list[int] = []
        self.checked_network = False
        while len(self.pids) < 2:
            line = self.proc.stdout.readline()
            assert line, "".join(self.lines)
            self._note(line)

    def _note(self, line: str) -> None:
        self.lines.append(line)
        if m := re.match(r"launch_workers: worker (\d+) pid (\d+)", line):
            self.pids[int(m[1])] = int(m[2])
        if m := re.match(r"launch_workers: worker_hosts (\S+)", line):
            self.ports = [int(h.rsplit(":", 1)[1]) for h in m[1].split(",")]
        if "Running training" in line and not self.checked_network:
            self.check_loopback_only()

    def check_loopback_only(self) -> None:
        """The workers' servers listen in a namespace whose only interface is loopback,
        and nothing listens on their ports in this (the machine's) namespace."""
        pid = self.pids[0]
        ifaces = [ln.split(":")[0].strip()
                  for ln in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]]
        assert ifaces == ["lo"], ifaces
        assert set(self.ports) <= {sock.port for sock in listeners(pid)}
        assert not set(self.ports) & {sock.port for sock in listeners("self")}
        self.checked_network = True

    def wait(self, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self._note(line)
            assert time.monotonic() < deadline, "workers too slow"
        self.proc.wait(timeout=60)
        return "".join(self.lines)


@pytest.mark.slow
@needs_netns
def test_two_workers_equal_one_device_and_listen_on_loopback_only(config0, golden_model,
                                                                   single, tmp_path):
    out = tmp_path / "workers"
    workers = Workers(_flags(config0, golden_model, out))
    log = workers.wait()
    assert workers.proc.returncode == 0, log[-3000:]
    assert workers.checked_network
    digests = re.findall(r"worker (\d) weights digest (\w+)", log)
    assert len(digests) == 2 and digests[0][1] == digests[1][1], digests  # no drift
    _assert_same(_variables(out), single)
    # Only the chief wrote: one events file, one training_config.json.
    assert len(list(out.glob("events.out.tfevents.*"))) == 1


@pytest.mark.slow
@needs_netns
def test_killed_worker_then_rerun_gives_the_uninterrupted_result(config0, golden_model, tmp_path):
    total, every = 60, 5
    flags = dict(num_train_steps=total, save_checkpoints_steps=every, log_every_n_steps=every,
                 iterations_per_loop=1)
    out = tmp_path / "killed"
    workers = Workers(_flags(config0, golden_model, out, **flags))
    deadline = time.monotonic() + 240
    while not list(out.glob("model.ckpt-*.index")) and time.monotonic() < deadline:
        assert workers.proc.poll() is None, "".join(workers.lines)
        time.sleep(0.02)
    os.kill(workers.pids[1], signal.SIGKILL)
    log = workers.wait()
    assert workers.proc.returncode != 0
    assert "worker 1 exited with status -9; stopping the others" in log
    killed_at = int(tf.train.load_variable(tf.train.latest_checkpoint(str(out)), "global_step"))
    assert 0 < killed_at < total, "the run must be killed mid-training"

    rerun = Workers(_flags(config0, golden_model, out, **flags))
    log = rerun.wait()
    assert rerun.proc.returncode == 0, log[-3000:]
    assert f"(global_step {killed_at})" in log  # both resumed from the checkpoint
    assert len(re.findall(r"Resuming from", log)) == 2
    ref = tmp_path / "uninterrupted"
    _run(config0, golden_model, ref, **flags)
    # 60 steps, not 3: float32 rounding differences between two workers' summed half
    # batches and one device's batch grow with the steps (1.06e-5 seen once under load).
    # A wrong resume (a batch repeated or skipped) moves weights by ~lr = 1e-3 in one step.
    _assert_same(_variables(out), _variables(ref), tol=5e-5)


def test_launcher_gives_each_worker_its_own_gpus():
    from bert import launch_workers
    assert launch_workers.gpu_slices(2, 1, 2) == ["0", "1"]
    assert launch_workers.gpu_slices(2, 4, 8) == ["0,1,2,3", "4,5,6,7"]
    assert launch_workers.gpu_slices(2, 4, 4) is None  # not enough: leave the env alone
    assert launch_workers.gpu_slices(2, 1, 0) is None
    assert launch_workers._num_devices(["--x=1", "--num_devices=4"]) == 4
    assert launch_workers._num_devices(["--num_devices", "3"]) == 3
    assert launch_workers._num_devices([]) == 1


def test_a_lost_worker_is_reported_in_one_useful_line():
    """What the surviving worker's session raised when its peer was killed (TF 2.21)."""
    message = ("From /job:worker/replica:0/task:0:\n"
               "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:60881: "
               "Failed to connect to remote host: Connection refused\n"
               "Additional GRPC error information from remote target /job:worker/replica:0/"
               "task:1 while calling /tensorflow.WorkerService/RecvBuf:\n")
    line = train_loop.useful_error_line(message)
    assert line.startswith("failed to connect to all addresses") and line.endswith("refused")
    assert train_loop.likely_cause(line, 627) == (
        "; likely cause: another worker stopped or is unreachable (rerun all workers)")
    graph_error = ("Graph execution error:\n\nDetected at node 'x' defined at (most recent "
                   "call last):\n  File \"a.py\", line 1\n\nindices[902] = 1104 is not in "
                   "[0, 1000)\n\t [[{{node bert/embeddings/GatherV2}}]]")
    line = train_loop.useful_error_line(graph_error)
    assert line == "indices[902] = 1104 is not in [0, 1000)"
    assert "token id 1104 >= vocab_size 1000" in train_loop.likely_cause(line, 1000)
    assert train_loop.likely_cause(line, 5000) == ""  # another gather: no guess
