"""tf.train.Example encoding and TFRecord reading without TensorFlow.

`serialize_example` writes the bytes TensorFlow's protobuf writes for the pretraining
features (proto3: packed lists, empty lists omitted), in a chosen map-entry order;
`parse_example` and `iter_records` read them back (tests, `--log_examples`). The fast
path (bert/_cpd_native.c) writes the same encoding in C; framing with CRCs is done there
or by tf.io.TFRecordWriter on the reference path.
"""
from __future__ import annotations

import os
import struct
from typing import Iterator, Sequence

# DEVIATION: features written in Google's insertion order (its bytes had protobuf map order)
# Feature order inside each serialised tf.train.Example: Google inserts them in this order.
# The original's bytes put these map entries in protobuf's hash-map order, which differs
# between runs of the original itself (the two golden files disagree), so only the parsed
# records are reproducible; `feature_order` lets tests reproduce either golden byte stream.
FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
            "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
    return bytes([field << 3 | 2]) + _varint(len(payload)) + payload


def serialize_example(features: dict[str, list], feature_order: Sequence[str] = FEATURES) -> bytes:
    """tf.train.Example bytes (proto3: packed lists, empty lists omitted), entries in
    `feature_order`; `masked_lm_weights` is a float list, the rest int64 lists."""
    entries = b""
    for name in feature_order:
        values = features[name]
        if name == "masked_lm_weights":
            packed = struct.pack("<%df" % len(values), *values)
            feature = _len_field(2, _len_field(1, packed) if values else b"")
        else:
            packed = b"".join(_varint(v) for v in values)
            feature = _len_field(3, _len_field(1, packed) if values else b"")
        entries += _len_field(1, _len_field(1, name.encode()) + _len_field(2, feature))
    return _len_field(1, entries)


def iter_records(path: str | os.PathLike) -> Iterator[bytes]:
    """The payloads of a TFRecord file (framing CRCs not checked: a test/logging helper)."""
    with open(path, "rb") as f:
        while True:
            head = f.read(12)
            if not head:
                return
            (n,) = struct.unpack("<Q", head[:8])
            yield f.read(n)
            f.read(4)


def _read_varint(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _fields(b: bytes) -> Iterator[tuple[int, bytes]]:
    """(field number, payload) of each length-delimited field of a message."""
    i = 0
    while i < len(b):
        tag, i = _read_varint(b, i)
        n, i = _read_varint(b, i)
        yield tag >> 3, b[i:i + n]
        i += n


def parse_example(data: bytes) -> dict[str, list]:
    """Decode what `serialize_example` writes (any entry order) into {name: values}."""
    out = {}
    for _, features in _fields(data):
        for _, entry in _fields(features):
            parts = dict(_fields(entry))
            name = parts[1].decode()
            (kind, lst), = _fields(parts[2]) if parts[2] else [(3, b"")]
            packed = dict(_fields(lst)).get(1, b"")
            if kind == 2:
                out[name] = list(struct.unpack("<%df" % (len(packed) // 4), packed))
            else:
                vals, i = [], 0
                while i < len(packed):
                    v, i = _read_varint(packed, i)
                    vals.append(v)
                out[name] = vals
    return out
