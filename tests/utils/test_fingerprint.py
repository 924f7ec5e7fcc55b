"""utils.fingerprint: size + mtime + sha256, the hash computed once per file version."""
from __future__ import annotations

import hashlib
import os

from utils.fingerprint import FileFacts, fingerprint, same_content


def test_hash_is_cached_by_size_and_mtime_and_redone_when_the_file_changes(tmp_path):
    facts = FileFacts(tmp_path / "cache")
    f = tmp_path / "notes.csv"
    f.write_bytes(b"ROW_ID,TEXT\n1,abc\n")
    calls = []

    def counting(path):
        calls.append(path)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    first = facts.get(f, "sha256", counting)
    assert first == hashlib.sha256(b"ROW_ID,TEXT\n1,abc\n").hexdigest()
    assert facts.get(f, "sha256", counting) == first and len(calls) == 1  # from the cache
    assert FileFacts(tmp_path / "cache").get(f, "sha256", counting) == first and len(calls) == 1  # persisted
    f.write_bytes(b"ROW_ID,TEXT\n1,abd\n")  # same size, new content and mtime
    os.utime(f, ns=(1, 2))
    assert facts.get(f, "sha256", counting) != first and len(calls) == 2


def test_fingerprint_fields_and_same_content_ignores_mtime(tmp_path):
    facts = FileFacts(tmp_path / "cache")
    f = tmp_path / "vocab.txt"
    f.write_text("[PAD]\n")
    fp = fingerprint(f, facts)
    assert fp == {"path": str(f.resolve()), "size": 6, "mtime_ns": f.stat().st_mtime_ns,
                  "sha256": hashlib.sha256(b"[PAD]\n").hexdigest()}
    os.utime(f, ns=(10**18, 10**18))  # touched, same bytes
    assert same_content([fp], [fingerprint(f, facts)])
    f.write_text("[UNK]\n")
    assert not same_content([fp], [fingerprint(f, facts)])


def test_a_damaged_cache_is_recomputed_not_fatal(tmp_path):
    facts = FileFacts(tmp_path)
    facts.file.write_text("{not json")
    f = tmp_path / "a"
    f.write_bytes(b"x")
    assert fingerprint(f, facts)["sha256"] == hashlib.sha256(b"x").hexdigest()
