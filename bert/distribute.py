"""Data-parallel pretraining over several devices and machines, on TensorFlow's own
machinery: in-graph replicas in one process, TF collective all-reduce between processes.

Semantics (the single-device run is the reference):
  - `--train_batch_size` is the GLOBAL batch. Every process reads the same seeded global
    batch stream and each replica takes its contiguous slice of each global batch, so the
    data order, and resume by skipping batches, are those of one device.
  - Each replica computes its additive loss pieces (pretraining_model.replica_forward);
    the masked-LM loss is normalised by the GLOBAL sum of label weights and the
    next-sentence loss by the global batch, so the summed gradients are exactly the
    gradients of the single-device loss. They are summed across replicas BEFORE
    clip_by_global_norm, then every process applies the same update to its copy.
  - In one process the replicas share one set of variables (on the first device), so
    they cannot drift apart. Across processes every worker holds a copy: the chief's
    values are broadcast at start (an all-reduce where only the chief contributes), and
    gradients and the loss pieces are all-reduced (`CollectiveReduce`, ring on CPU,
    NCCL on GPU) every step, so the copies stay identical; `weights_digest` lets a run
    prove it.
No Horovod, no parameter server. TF's gRPC server is unauthenticated and listens on every
interface of its network namespace: use it on isolated networks only.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from utils.cli import UserError

tf1 = tf.compat.v1
GROUP_KEY = 1


class DistributeError(UserError):
    """A device or cluster setting that cannot work (named in the message)."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the replicas of a run live, as seen from this process."""
    worker_hosts: tuple[str, ...] = ()  # empty: a single process
    task_index: int = 0
    num_local: int = 1                  # replicas (devices) in this process
    device_type: str = "CPU"            # "GPU" or "CPU" (logical CPU devices)
    collective_timeout_s: float = 1800.0

    @property
    def num_workers(self) -> int:
        return max(1, len(self.worker_hosts))

    @property
    def num_replicas(self) -> int:
        return self.num_workers * self.num_local

    @property
    def is_chief(self) -> bool:
        return self.task_index == 0

    @property
    def multi_worker(self) -> bool:
        return self.num_workers > 1

    @property
    def task_prefix(self) -> str:
        return f"/job:worker/replica:0/task:{self.task_index}" if self.multi_worker else ""

    @property
    def host_device(self) -> str:
        return f"{self.task_prefix}/device:CPU:0"

    def replica_device(self, r: int) -> str:
        return f"{self.task_prefix}/device:{self.device_type}:{r}"

    def first_replica(self) -> int:
        """Global index of this process's first replica (its slice of the global batch)."""
        return self.task_index * self.num_local


def parse_tf_config(text: str) -> tuple[tuple[str, ...], int]:
    """TF_CONFIG (`{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}`)
    -> (worker hosts, task index)."""
    try:
        obj = json.loads(text)
        workers = tuple(obj["cluster"]["worker"])
        task = obj.get("task", {})
        if task.get("type", "worker") != "worker":
            raise DistributeError(f"TF_CONFIG: task type {task.get('type')!r} is not supported "
                                  "(only a 'worker' job; the chief is worker 0)")
        return workers, int(task.get("index", 0))
    except (ValueError, KeyError, TypeError) as e:
        raise DistributeError(f"TF_CONFIG is not a valid cluster description ({e})") from None


def make_layout(num_devices: int, worker_hosts: str = "", task_index: int = 0,
                collective_timeout_s: float = 1800.0) -> Layout:
    """Layout from the flags (`--worker_hosts` empty: TF_CONFIG if set, else one process).

    Replicas per process: `num_devices` GPUs when the machine has that many, else (no GPU)
    that many logical CPU devices, which is how the multi-device path is tested on CPU.
    """
    hosts = tuple(h.strip() for h in worker_hosts.split(",") if h.strip())
    if not hosts and os.environ.get("TF_CONFIG"):
        hosts, task_index = parse_tf_config(os.environ["TF_CONFIG"])
    if num_devices < 1:
        raise DistributeError(f"--num_devices must be >= 1 (got {num_devices})")
    if hosts and not 0 <= task_index < len(hosts):
        raise DistributeError(f"--task_index={task_index} is not in [0, {len(hosts)}) "
                              f"for --worker_hosts with {len(hosts)} entries")
    for host in hosts:
        if not host.rpartition(":")[2].isdigit():
            raise DistributeError(f"--worker_hosts entry {host!r} is not HOST:PORT")
    gpus = len(tf.config.list_physical_devices("GPU"))
    if gpus and num_devices > gpus:
        raise DistributeError(f"--num_devices={num_devices} but this machine has {gpus} GPU(s)")
    return Layout(worker_hosts=hosts if len(hosts) > 1 else (), task_index=task_index if
                  len(hosts) > 1 else 0, num_local=num_devices,
                  device_type="GPU" if gpus else "CPU",
                  collective_timeout_s=collective_timeout_s)


def configure_session(config: tf1.ConfigProto, layout: Layout) -> tf1.ConfigProto:
    """Add the layout's devices and collective settings to a session config (in place)."""
    if layout.device_type == "CPU" and layout.num_local > 1:
        config.device_count["CPU"] = layout.num_local  # N logical CPU devices
    if layout.multi_worker:
        config.experimental.collective_group_leader = "/job:worker/replica:0/task:0"
        # Each worker runs only its own ops; the collectives do the talking.
        del config.device_filters[:]
        config.device_filters.append(f"/job:worker/task:{layout.task_index}")
    return config


def start_server(layout: Layout, config: tf1.ConfigProto) -> str:
    """Start this worker's gRPC server; returns the session target."""
    cluster = tf.train.ClusterSpec({"worker": list(layout.worker_hosts)})
    try:
        server = tf.distribute.Server(cluster, job_name="worker", task_index=layout.task_index,
                                      config=config, start=True)
    except tf.errors.OpError as e:
        raise DistributeError(f"cannot start the worker server on "
                              f"{layout.worker_hosts[layout.task_index]}: "
                              f"{e.message.strip().splitlines()[0]}") from None
    return server.target


class Collectives:
    """Sum over the workers (identity in a single process); one instance key per op."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._next_key = 1

    def all_sum(self, tensor: tf.Tensor) -> tf.Tensor:
        """Sum over workers. Build it under replica 0's device (where the variables are):
        the NCCL hint is for GPU tensors."""
        if not self.layout.multi_worker:
            return tensor
        key, self._next_key = self._next_key, self._next_key + 1
        hint = "nccl" if self.layout.device_type == "GPU" else "ring"
        return tf.raw_ops.CollectiveReduce(
            input=tensor, group_size=self.layout.num_workers, group_key=GROUP_KEY,
            instance_key=key, merge_op="Add", final_op="Id", subdiv_offsets=[0],
            communication_hint=hint, timeout_seconds=self.layout.collective_timeout_s)

    def all_sum_packed(self, tensors: list[tf.Tensor]) -> list[tf.Tensor]:
        """One all-reduce for many tensors of one dtype (flattened, concatenated)."""
        if not self.layout.multi_worker or not tensors:
            return tensors
        flat = tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)
        summed = self.all_sum(flat)
        sizes = [int(np.prod(t.shape.as_list())) for t in tensors]
        return [tf.reshape(part, t.shape) for part, t in
                zip(tf.split(summed, sizes), tensors)]

    def broadcast_from_chief(self, variables: list) -> tf.Operation:
        """Assign the chief's values to every worker's copy (a no-op in one process)."""
        if not self.layout.multi_worker:
            return tf.no_op()
        ops = []
        by_dtype: dict = {}
        for v in variables:
            by_dtype.setdefault(v.dtype.base_dtype, []).append(v)
        for dtype, group in sorted(by_dtype.items(), key=lambda kv: kv[0].name):
            mine = [v.read_value() if self.layout.is_chief else tf.zeros(v.shape, dtype)
                    for v in group]
            for v, value in zip(group, self.all_sum_packed(mine)):
                ops.append(v.assign(value))
        return tf.group(*ops)


def split_for_replicas(features: dict, num_local: int) -> list[dict]:
    """This process's batch -> one contiguous slice per local replica."""
    if num_local == 1:
        return [features]
    parts = {k: tf.split(v, num_local, axis=0) for k, v in features.items()}
    return [{k: parts[k][r] for k in features} for r in range(num_local)]


def dense(grad):
    """IndexedSlices (embedding gathers) -> dense, so replica gradients can be summed."""
    return tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad


def weights_digest(sess: tf1.Session, variables: list) -> str:
    """SHA-256 of every variable's bytes (sorted by name): equal across workers iff the
    copies are identical, which is how a run shows its replicas did not drift."""
    ordered = sorted(variables, key=lambda v: v.op.name)
    h = hashlib.sha256()
    for v, value in zip(ordered, sess.run(ordered)):  # one call: cheap on a remote session
        h.update(v.op.name.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()[:16]
