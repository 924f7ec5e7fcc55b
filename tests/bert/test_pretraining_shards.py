"""bert.pretraining_shards (create_pretraining_data --output_dir): the same records on a
local Dask cluster, on a local process pool and in one process; a SIGKILLed Dask worker
is survived with identical output; Ctrl-C with 2 workers leaves no process behind and the
rerun resumes; nothing listens outside 127.0.0.0/8."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_prep.synthetic_corpus import make_corpus
from bert import create_pretraining_data as cpd
from tests.helpers import is_loopback, listening_addresses, open_paths, process_tree, still_alive

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(cpd._cpd_native is None, reason="bert._cpd_native not built")


@pytest.fixture(scope="module")
def shards(tmp_path_factory, cased_vocab):
    """4 shards of ~0.8 MB of generated clinical text and their records written by one
    process (--num_workers 1): the expected bytes of every other way of running."""
    d = tmp_path_factory.mktemp("shards")
    (d / "in").mkdir()
    for i in range(4):
        (d / "in" / f"s{i}.txt").write_text(make_corpus(650, seed=10 + i), "utf-8")
    args = common_args(d, cased_vocab)
    r = cli(*args, "--output_dir", str(d / "expected"))
    assert r.returncode == 0, r.stderr
    expected = {f"s{i}.tfrecord": (d / "expected" / f"s{i}.tfrecord").read_bytes() for i in range(4)}
    assert all(len(b) > 1_000_000 for b in expected.values())
    return d, args, expected


def common_args(d: Path, vocab: Path) -> list[str]:
    return ["--input_file", f"{d}/in/*.txt", "--vocab_file", str(vocab), "--do_lower_case=False",
            "--dupe_factor=5", "--seed_per_shard"]


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bert.create_pretraining_data", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, **kw)


def popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bert.create_pretraining_data", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tfrecord"))}


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_local_pool_and_dask_workers_write_the_same_bytes(shards, tmp_path):
    d, args, expected = shards
    r = cli(*args, "--output_dir", str(tmp_path / "pool"), "--num_workers=2")
    assert r.returncode == 0, r.stderr
    assert outputs(tmp_path / "pool") == expected
    # A local Dask cluster; while it runs, record what its processes listen on.
    proc = popen(*args, "--output_dir", str(tmp_path / "dask"), "--dask_workers=2")
    listening: set[str] = set()
    while proc.poll() is None:
        listening |= listening_addresses(process_tree(proc.pid))
        time.sleep(0.05)
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert "4 shard(s) on local Dask cluster of 2 worker(s)" in err
    assert outputs(tmp_path / "dask") == expected
    assert listening, "the Dask scheduler/workers were never seen listening"
    assert all(is_loopback(ip) for ip in listening), listening
    # resume: everything is up to date, whichever executor runs the rerun
    r = cli(*args, "--output_dir", str(tmp_path / "dask"), "--num_workers=2")
    assert r.returncode == 0 and "4 skipped" in r.stderr, r.stderr


def test_sigkilled_dask_worker_is_survived_with_identical_output(shards, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    d, args, expected = shards
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        ours = listening_addresses(process_tree(os.getpid()))
        assert ours and all(is_loopback(ip) for ip in ours), ours
        proc = popen(*args, "--output_dir", str(out), "--scheduler", cluster.scheduler_address)
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and proc.poll() is None and time.monotonic() < deadline:
            for pid in worker_pids:  # kill a worker while it holds a shard open (mid-task)
                files = open_paths(pid)
                if any(f.startswith(str(d / "in")) or ".tmp-" in f for f in files):
                    os.kill(pid, signal.SIGKILL)
                    killed = pid
                    break
            time.sleep(0.005)
        _, err = proc.communicate(timeout=240)
        assert killed is not None, "no worker was caught mid-shard"
        assert proc.returncode == 0, err
        new_pids = set(client.run(os.getpid).values())
        assert killed not in new_pids  # the nanny started a fresh worker
    assert outputs(out) == expected
    # A rerun skips every shard and removes what the killed worker left behind.
    r = cli(*args, "--output_dir", str(out))
    assert r.returncode == 0 and "4 skipped" in r.stderr, r.stderr
    assert temps(out) == []


def test_ctrl_c_with_two_workers_leaves_no_process_and_the_rerun_resumes(shards, tmp_path):
    d, args, expected = shards
    out = tmp_path / "out"
    proc = popen(*args, "--output_dir", str(out), "--num_workers=2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        procs = process_tree(proc.pid)
        if len(procs) >= 3 and out.is_dir() and temps(out):  # both workers busy writing
            break
        time.sleep(0.01)
    procs = process_tree(proc.pid)
    assert proc.poll() is None and len(procs) >= 3, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=30)
    while still_alive(procs) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert still_alive(procs) == []
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command to resume" in err
    assert "Traceback" not in err
    r = cli(*args, "--output_dir", str(out), "--num_workers=2")
    assert r.returncode == 0, r.stderr
    assert outputs(out) == expected
    assert temps(out) == []


def test_a_killed_pool_worker_is_one_line_and_the_rerun_resumes(shards, tmp_path):
    """The OOM killer's SIGKILL on a local worker: one line naming a shard, exit 1, no
    traceback; the rerun finishes with the same bytes."""
    d, args, expected = shards
    out = tmp_path / "out"
    proc = popen(*args, "--output_dir", str(out), "--num_workers=2")
    deadline = time.monotonic() + 60
    victim = None
    while victim is None and proc.poll() is None and time.monotonic() < deadline:
        for child in process_tree(proc.pid) - {proc.pid}:
            if any(f.startswith(str(d / "in")) for f in open_paths(child)):
                victim = child
                break
        time.sleep(0.005)
    assert victim is not None, "no worker was caught mid-shard"
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert "a worker process died while the shards ran" in err and "rerun the same command" in err
    r = cli(*args, "--output_dir", str(out), "--num_workers=2")
    assert r.returncode == 0, r.stderr
    assert outputs(out) == expected and temps(out) == []


@pytest.mark.parametrize("where", ["--num_workers=2", "--dask_workers=1"])
def test_bad_shard_on_a_worker_is_one_line(tmp_path, cased_vocab, where):
    """A user error raised on a worker reaches the user as one line (on Dask, without the
    worker logging a failed task and its traceback); the good shard is kept."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(make_corpus(30, seed=1), "utf-8")
    (tmp_path / "in" / "b.txt").write_bytes(b"fine line\n\nbad \xff byte\n")
    r = cli("--input_file", f"{tmp_path}/in/*.txt", "--output_dir", str(tmp_path / "out"),
            "--vocab_file", str(cased_vocab), "--do_lower_case=False", where)
    assert r.returncode == 1, r.stderr
    assert f"create_pretraining_data: error: {tmp_path}/in/b.txt: line 3: invalid UTF-8 at byte offset 15" in r.stderr
    assert "Traceback" not in r.stderr and "Compute Failed" not in r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tfrecord", "a.tfrecord.json"]


def test_sidecars_are_resume_records_and_an_older_format_is_refused_untouched(tmp_path, cased_vocab):
    """The sidecar is a utils.resume_record record (input fingerprint, output size and
    sha256, counts); a rerun skips the shard; a version 1 sidecar (the previous format) is
    refused with one line before any shard runs, and nothing in the folder changes."""
    import hashlib
    import json

    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        (tmp_path / "in" / f"{name}.txt").write_text(make_corpus(30, seed=ord(name)), "utf-8")
    out = tmp_path / "out"
    args = ["--input_file", f"{tmp_path}/in/*.txt", "--output_dir", str(out), "--vocab_file", str(cased_vocab),
            "--do_lower_case=False", "--num_workers=1"]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    side = json.loads((out / "a.tfrecord.json").read_text())
    records = (out / "a.tfrecord").read_bytes()
    assert (side["kind"], side["version"]) == ("create_pretraining_data.shard", 2)
    assert side["outputs"] == [{"path": "a.tfrecord", "size": len(records),
                                "sha256": hashlib.sha256(records).hexdigest()}]
    assert side["inputs"]["text"][0]["path"] == str(tmp_path / "in" / "a.txt")
    assert side["counts"]["instances"] == len(list(cpd.iter_records(out / "a.tfrecord")))
    r = cli(*args)
    assert r.returncode == 0 and "2 skipped" in r.stderr, r.stderr
    old = {"version": 1, "settings": side["settings"],
           "input": {k: side["inputs"]["text"][0][k] for k in ("path", "size", "sha256")},
           "output_size": len(records), "counts": side["counts"]}
    (out / "b.tfrecord.json").write_text(json.dumps(old))
    (out / "a.tfrecord.json").unlink()  # a shard that would otherwise be redone first
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = cli(*args)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        f"create_pretraining_data: error: {out}/b.tfrecord.json: written by an older version of this project "
        "(format 1; this one reads format 2); use another --output_dir, or finish it with the version of "
        "this project that started it")
    assert "Traceback" not in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
