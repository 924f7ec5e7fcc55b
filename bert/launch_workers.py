"""Start N local worker processes of bert.run_pretraining (e.g. one per GPU, or a CPU test
of the multi-worker path) and watch them.

    python -m bert.launch_workers --num_workers 2 [--private_network] -- \\
        --bert_config_file=... --input_file=... --output_dir=... --do_train ...

Each worker gets `--worker_hosts=127.0.0.1:P0,127.0.0.1:P1,... --task_index=i` (free
ports) and, on a GPU machine, its own GPUs (CUDA_VISIBLE_DEVICES: worker i sees GPUs
i*K .. i*K+K-1, K = its --num_devices). Prints `launch_workers: worker I pid N` for each, then forwards their output.
When one worker fails or dies, the others are stopped (they would otherwise wait for it
in the next all-reduce), and the launcher exits with the failed worker's status: rerun
the same command to resume from the last checkpoint.

TF's gRPC server has no authentication and no bind-address option: it listens on every
interface of its network namespace. `--private_network` runs the workers in a private
network namespace whose only interface is loopback (`unshare -rn`, Linux), so nothing
outside this machine can reach them; without it, use the launcher on an isolated machine.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import time

from utils.cli import UsageError, UserError, run_main

PROG = "launch_workers"
_IN_NAMESPACE = "CLINICALBERT_PRIVATE_NETWORK"


class LaunchError(UserError):
    pass


def _bring_up_loopback() -> None:
    """`ip link set lo up` without the ip tool (a fresh namespace has lo down)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = fcntl.ioctl(s, siocgifflags, struct.pack("16sH22x", b"lo", 0))
        flags = struct.unpack("16sH22x", ifr)[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


def network_interfaces() -> list[str]:
    """Interfaces of this process's network namespace (from /proc/net/dev)."""
    with open("/proc/net/dev", encoding="ascii") as f:
        return sorted(line.split(":")[0].strip() for line in f.readlines()[2:])


def _enter_private_network(argv: list[str]) -> None:
    """Re-run this command inside `unshare -rn` (user + network namespace)."""
    env = dict(os.environ, **{_IN_NAMESPACE: "1"})
    cmd = ["unshare", "-rn", sys.executable, "-m", "bert.launch_workers", *argv]
    try:
        os.execvpe("unshare", cmd, env)
    except OSError as e:
        raise LaunchError(f"cannot create a private network namespace (unshare -rn): "
                          f"{e.strerror}") from None


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stop(procs: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def count_gpus() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def gpu_slices(num_workers: int, per_worker: int, available: int) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES of each worker; None when there are not enough GPUs."""
    if available < num_workers * per_worker:
        return None
    return [",".join(str(i * per_worker + k) for k in range(per_worker))
            for i in range(num_workers)]


def _num_devices(worker_args: list[str]) -> int:
    for i, arg in enumerate(worker_args):
        if arg.startswith("--num_devices="):
            return int(arg.split("=", 1)[1])
        if arg == "--num_devices" and i + 1 < len(worker_args):
            return int(worker_args[i + 1])
    return 1


def launch(num_workers: int, worker_args: list[str]) -> int:
    """Start the workers, wait; stop all when one fails. Returns the exit status."""
    hosts = ",".join(f"127.0.0.1:{p}" for p in free_ports(num_workers))
    print(f"{PROG}: worker_hosts {hosts}", flush=True)
    gpus = None
    if "CUDA_VISIBLE_DEVICES" not in os.environ:
        gpus = gpu_slices(num_workers, _num_devices(worker_args), count_gpus())
    procs = []
    for i in range(num_workers):
        cmd = [sys.executable, "-m", "bert.run_pretraining", *worker_args,
               f"--worker_hosts={hosts}", f"--task_index={i}"]
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpus[i]) if gpus else None
        # Each worker dies with the launcher (no orphan left waiting in an all-reduce).
        procs.append(subprocess.Popen(cmd, preexec_fn=_die_with_parent, env=env))
        print(f"{PROG}: worker {i} pid {procs[-1].pid}", flush=True)
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                print(f"{PROG}: worker {i} exited with status {code}; stopping the others "
                      "(rerun the same command to resume)", file=sys.stderr, flush=True)
                _stop(procs)
                return code if code > 0 else 128 - code
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.2)
    except KeyboardInterrupt:
        _stop(procs)
        raise


def _die_with_parent() -> None:
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--private_network", action="store_true",
                        help="run the workers in a private network namespace (loopback only)")
    parser.add_argument("worker_args", nargs=argparse.REMAINDER,
                        help="-- then the bert.run_pretraining flags")
    args = parser.parse_args(argv)
    worker_args = args.worker_args[1:] if args.worker_args[:1] == ["--"] else args.worker_args
    if args.num_workers < 1:
        raise UsageError(f"--num_workers must be >= 1 (got {args.num_workers})")
    if any(a.startswith(("--worker_hosts", "--task_index")) for a in worker_args):
        raise UsageError("--worker_hosts/--task_index are set by the launcher")
    if args.private_network and os.environ.get(_IN_NAMESPACE) != "1":
        _enter_private_network(argv)
    if os.environ.get(_IN_NAMESPACE) == "1":
        _bring_up_loopback()
        print(f"{PROG}: network interfaces: {','.join(network_interfaces())}", flush=True)
    return launch(args.num_workers, worker_args)


if __name__ == "__main__":
    sys.exit(run_main(PROG, main, sys.argv[1:]))
