"""section_split on a local pool and on Dask: byte-identical shards, a SIGKILLed Dask worker
survived, resume, Ctrl-C with 2 workers, and test servers on 127.0.0.1 only."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import section_split.__main__ as cli
import section_split.run as run_module
import section_split.worker as worker
from data_prep.synthetic_notes import write_synthetic_notes
from tests.helpers import is_loopback, listening_addresses, process_tree, still_alive

REPO = Path(__file__).resolve().parents[2]
ARGS = ("--shard_notes", "20")


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("notes") / "NOTEEVENTS.csv.gz"
    write_synthetic_notes(path, 200, seed=4)
    return path


@pytest.fixture(scope="module")
def reference(notes, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("w1")
    assert cli.main(["--input", str(notes), "--output_dir", str(out), "--num_workers", "1", *ARGS]) == 0
    return _shards(out)


def _shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.txt"))}


def _run(notes: Path, out: Path, *extra: str) -> int:
    return cli.main(["--input", str(notes), "--output_dir", str(out), *ARGS, *extra])


# ---------------------------------------------------------------- listening sockets

class SocketWatch(threading.Thread):
    """Samples the listening sockets of this process and its descendants while a run
    goes on (Dask's scheduler, nannies and workers among them)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.seen |= listening_addresses(process_tree(os.getpid()))

    def __enter__(self) -> "SocketWatch":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()


@pytest.mark.slow
def test_local_pool_and_local_dask_cluster_are_byte_identical(notes, reference, tmp_path, capsys):
    assert _run(notes, tmp_path / "w2", "--num_workers", "2") == 0
    assert _shards(tmp_path / "w2") == reference
    with SocketWatch() as watch:
        assert _run(notes, tmp_path / "dask", "--dask_workers", "2") == 0
    assert _shards(tmp_path / "dask") == reference
    assert "local Dask cluster of 2 worker(s)" in capsys.readouterr().err
    assert watch.seen and all(is_loopback(a) for a in watch.seen), watch.seen
    m1, m2 = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("w2", "dask"))
    assert m1["totals"] == m2["totals"] and m1["dropped_notes"] == m2["dropped_notes"]


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        yield cluster, client


def test_scheduler_survives_a_killed_worker_and_resumes(notes, reference, cluster, tmp_path, monkeypatch):
    local_cluster, client = cluster
    addresses = [local_cluster.scheduler_address, *client.scheduler_info()["workers"]]
    assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
    monkeypatch.setattr(run_module, "BATCH_NOTES", 4)      # many small tasks in flight
    scheduler = ("--scheduler", local_cluster.scheduler_address)

    # a clean run: identical shards; each worker process built its pipeline once
    out = tmp_path / "clean"
    assert _run(notes, out, *scheduler) == 0
    assert _shards(out) == reference
    assert set(client.run(worker.pipelines_built).values()) == {1}

    # resume: a missing shard is redone, the others are skipped (untouched)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.txt")}
    missing = sorted(stamps)[1]
    (out / missing).unlink()
    (out / (missing + ".done")).unlink()
    assert _run(notes, out, *scheduler) == 0
    assert _shards(out) == reference
    assert {p.name for p in out.glob("*.txt") if p.stat().st_mtime_ns != stamps.get(p.name)} == {missing}

    # a worker SIGKILLed while batches are in flight: Dask reruns its tasks elsewhere
    victim = sorted(client.run(os.getpid).values())[0]
    out = tmp_path / "killed"
    killed: list[int] = []

    def kill_when_work_is_under_way() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(p.stat().st_size for p in out.glob(".*.tmp-*")):
                killed.append(len(list(out.glob("*.done"))))
                os.kill(victim, signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_work_is_under_way)
    killer.start()
    with SocketWatch() as watch:
        assert _run(notes, out, *scheduler) == 0
    killer.join()
    assert killed and killed[0] < len(reference), "the worker was not killed while work was pending"
    assert _shards(out) == reference
    assert watch.seen and all(is_loopback(a) for a in watch.seen), watch.seen


@pytest.mark.slow
def test_ctrl_c_with_two_workers_leaves_no_process_and_the_rerun_resumes(tmp_path):
    # Enough notes that most batches are still to come when the first shard is done
    # (the main process keeps 2 x workers + 1 batches of 64 notes in flight).
    notes = tmp_path / "NOTEEVENTS.csv.gz"
    write_synthetic_notes(notes, 700, seed=5)
    assert cli.main(["--input", str(notes), "--output_dir", str(tmp_path / "w1"), *ARGS]) == 0
    reference = _shards(tmp_path / "w1")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "section_split", "--input", str(notes), "--output_dir",
                             str(out), "--num_workers", "2", *ARGS], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: a test run started in the background of
                            # a non-interactive shell inherits SIGINT ignored, and so would
                            # Python's handler be missing in the child
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.done")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        group = process_tree(proc.pid)
        assert len(group) >= 3                          # the main process and its 2 workers
        os.killpg(proc.pid, signal.SIGINT)               # Ctrl-C reaches the whole group
        time.sleep(5)
        alive = still_alive(group)
        assert alive == [] or alive == [proc.pid] and proc.poll() is not None
        assert proc.wait(1) == 130
        err = proc.stderr.read().strip().splitlines()
        assert err[-1] == "section_split: interrupted; rerun the same command to resume"
        assert not any("Traceback" in line for line in err)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.txt")}
    assert done_before and not list(out.glob(".*.tmp-*"))
    assert _run(notes, out, "--num_workers", "2") == 0
    assert _shards(out) == reference
    assert all(p.stat().st_mtime_ns == done_before[p.name] for p in out.glob("*.txt") if p.name in done_before)
