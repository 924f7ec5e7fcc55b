"""Helpers the tests share (fixtures are in tests/conftest.py): one TFRecord reader, and
one /proc reader for process trees and listening sockets.

Imported as `from tests.helpers import ...` (pytest.ini puts the repository root on the
path). Linux only where /proc is read; the tests that use those parts are Linux tests.
"""
from __future__ import annotations

import ipaddress
import os
from itertools import islice
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from bert.tfrecord_codec import iter_records, parse_example

# ------------------------------------------------------------------------------ records


def read_records(path: str | os.PathLike, limit: int | None = None) -> list[dict[str, list]]:
    """The tf.train.Example records of a TFRecord file as {feature: values} dicts (ints;
    floats for masked_lm_weights), in file order, the first `limit` only when given.

    The project's codec reads them without TensorFlow (and without checking the framing
    CRCs: tests/bert/test_create_pretraining_data.py checks those with TensorFlow's reader).
    """
    return [parse_example(raw) for raw in islice(iter_records(path), limit)]


def read_batch(path: str | os.PathLike, n: int) -> dict[str, np.ndarray]:
    """The first `n` records of a TFRecord file stacked into one array per feature (what
    the input pipeline feeds a model when it reads in file order)."""
    records = read_records(path, n)
    return {name: np.array([r[name] for r in records]) for name in records[0]}


# ---------------------------------------------------------------------------- processes


class ProcessInfo(NamedTuple):
    ppid: int
    pgid: int
    cmdline: str


def process_table() -> dict[int, ProcessInfo]:
    """pid -> (parent pid, process group, command line) of every live, non-zombie
    process, from one /proc scan (processes that end during the scan are left out)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            # fields after the ")" closing the command name: state, ppid, pgrp, ...
            state, ppid, pgid = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:3]
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if state != "Z":
            table[int(entry)] = ProcessInfo(int(ppid), int(pgid), cmd.strip())
    return table


def process_tree(pid: int) -> set[int]:
    """`pid` and all its live descendants (empty when `pid` itself is gone)."""
    table = process_table()
    if pid not in table:
        return set()
    children: dict[int, list[int]] = {}
    for child, info in table.items():
        children.setdefault(info.ppid, []).append(child)
    found, todo = {pid}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (a zombie has exited; only its exit status
    waits to be collected)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def still_alive(pids: Iterable[int]) -> list[int]:
    """The pids of `pids` that are alive (see `alive`), sorted."""
    return sorted(p for p in pids if alive(p))


def open_paths(pid: int) -> list[str]:
    """What the file descriptors of `pid` point to (paths; sockets and pipes as
    "socket:[inode]", "pipe:[inode]"); empty when the process is gone."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return []
    targets = []
    for fd in fds:
        try:
            targets.append(os.readlink(fd))
        except OSError:  # closed meanwhile
            continue
    return targets


# ------------------------------------------------------------------------ listening sockets


class Listener(NamedTuple):
    ip: str      # as ipaddress writes it: "127.0.0.1", "::1", "::ffff:127.0.0.1"
    port: int
    inode: str   # the socket's inode, as /proc/<pid>/fd links name it ("socket:[inode]")


def _hex_ip(raw: str) -> str:
    """An address of /proc/net/tcp{,6}: 32-bit words in host (little-endian) byte order."""
    words = bytes.fromhex(raw)
    packed = b"".join(words[i:i + 4][::-1] for i in range(0, len(words), 4))
    return str(ipaddress.ip_address(packed))


def listeners(netns_pid: int | str = "self") -> list[Listener]:
    """The TCP sockets in LISTEN state of the network namespace `netns_pid` is in."""
    found = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{netns_pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # st 0A: LISTEN
                raw_ip, raw_port = fields[1].split(":")
                found.append(Listener(_hex_ip(raw_ip), int(raw_port, 16), fields[9]))
    return found


def listening_addresses(pids: Iterable[int]) -> set[str]:
    """The local IP addresses that the processes `pids` listen on (TCP)."""
    inodes = {target[len("socket:["):-1] for pid in pids for target in open_paths(pid)
              if target.startswith("socket:[")}
    return {sock.ip for sock in listeners() if sock.inode in inodes}


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback address (::ffff:127.x.y.z)."""
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
