"""utils.resume_record: the one record format, its completeness rule, the refusal of older
formats and the one settings message."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from utils.fingerprint import FileFacts, fingerprint_files
from utils.resume_record import (RECORD_VERSION, OldRecordError, changed_inputs, describe_input_change,
                                 make_record, output_entry, read_record, settings_diff,
                                 settings_mismatch, unmet, write_record)

KIND = "test.shard"
SETTINGS = {"max_seq_length": 128, "dupe_factor": 5}


@pytest.fixture
def done(tmp_path):
    """A finished piece of work: input in/a.txt, output out/a.rec, its record out/a.rec.json."""
    facts = FileFacts(tmp_path / "cache")
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "a.txt"
    src.write_text("some text\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.rec").write_bytes(b"records" * 10)
    inputs = {"text": fingerprint_files([src], facts)}
    record = make_record(KIND, settings=dict(SETTINGS), inputs=inputs,
                         outputs=[output_entry(out / "a.rec", out, facts=facts)], counts={"instances": 3})
    write_record(out / "a.rec.json", record)
    return tmp_path, facts, src, out


def rule(done, **changes):
    tmp_path, facts, src, out = done
    args = dict(kind=KIND, settings=dict(SETTINGS), inputs={"text": fingerprint_files([src], facts)}, folder=out)
    args.update(changes)
    return args


def test_a_written_record_reads_back_complete_with_relative_output_paths(done):
    _, _, src, out = done
    record = read_record(out / "a.rec.json")
    assert record["kind"] == KIND and record["version"] == RECORD_VERSION == 2
    assert record["outputs"] == [{"path": "a.rec", "size": 70,
                                  "sha256": hashlib.sha256(b"records" * 10).hexdigest()}]
    assert record["inputs"]["text"][0]["path"] == str(src.resolve())
    assert record["counts"] == {"instances": 3}
    assert unmet(record, **rule(done)) is None


def test_absent_or_damaged_records_are_not_done(done):
    _, _, _, out = done
    assert read_record(out / "none.json") is None
    assert unmet(None, **rule(done)) == "no record"
    damaged = out / "damaged.json"
    for text in ('{"kind": "test.sh', "[1, 2]", "null",
                 json.dumps({"kind": KIND, "version": RECORD_VERSION, "settings": {}}),  # fields missing
                 json.dumps(make_record(KIND, settings={}, outputs=[{"path": "a.rec"}]))):  # no size
        damaged.write_text(text)
        assert read_record(damaged) is None, text


def test_older_and_newer_formats_are_refused_with_one_line(done):
    _, _, _, out = done
    old = out / "old.json"
    old.write_text(json.dumps({"version": 1, "settings": SETTINGS, "output_size": 70}))
    with pytest.raises(OldRecordError) as e:
        read_record(old, "use another --output_dir")
    assert str(e.value) == (f"{old}: written by an older version of this project (format 1; this one reads "
                            "format 2); use another --output_dir")
    old.write_text(json.dumps({"settings": SETTINGS, "notes": 3, "bytes": 70}))
    with pytest.raises(OldRecordError, match=r"old.json: written by an older version .*\(unversioned format;"):
        read_record(old)
    old.write_text(json.dumps(make_record(KIND, settings=SETTINGS) | {"version": 3}))
    with pytest.raises(OldRecordError, match=r"written by a newer version of this project \(record format 3;"):
        read_record(old)
    assert "\n" not in str(e.value)


def test_the_rule_checks_kind_settings_inputs_and_output_sizes(done):
    _, _, src, out = done
    record = read_record(out / "a.rec.json")
    assert unmet(record, **rule(done, kind="other.kind")) == "a record of 'test.shard', not 'other.kind'"
    assert unmet(record, **rule(done, settings=dict(SETTINGS, dupe_factor=10))) == "other settings"
    os.utime(src, ns=(10**18, 10**18))  # touched: same bytes, still done
    assert unmet(record, **rule(done)) is None
    src.write_text("same text\n")  # same size, other content
    assert unmet(record, **rule(done)) == "input text changed"
    src.write_text("some text\n")
    (out / "a.rec").write_bytes(b"records")  # truncated output
    assert unmet(record, **rule(done)) == "a.rec has 7 bytes, not the 70 recorded"
    (out / "a.rec").unlink()
    assert unmet(record, **rule(done)) == "a.rec is missing"


def test_an_optional_input_left_out_keeps_the_work_a_new_one_redoes_it(done):
    tmp_path, facts, src, out = done
    ref = tmp_path / "ref.bin"
    ref.write_bytes(b"reference")
    text = fingerprint_files([src], facts)
    record = make_record(KIND, settings={}, inputs={"text": text, "reference": fingerprint_files([ref], facts)})
    assert unmet(record, kind=KIND, settings={}, inputs={"text": text, "reference": None}, folder=out,
                 optional_inputs={"reference"}) is None
    assert unmet(record, kind=KIND, settings={}, inputs={"text": text, "reference": None}, folder=out) \
        == "input reference changed"
    ref.write_bytes(b"Reference")
    assert changed_inputs(record["inputs"], {"text": text, "reference": fingerprint_files([ref], facts)},
                          {"reference"}) == ["reference"]


def test_a_directory_output_is_its_files_total_size_without_a_hash(tmp_path):
    run = tmp_path / "run"
    (run / "evaluate" / "ours" / "units").mkdir(parents=True)
    (run / "evaluate" / "ours" / "results.json").write_text("{}\n")
    (run / "evaluate" / "ours" / "units" / "s0.json").write_text('{"f1": 0.5}\n')
    entry = output_entry(run / "evaluate" / "ours", run)
    assert entry == {"path": "evaluate/ours", "size": 3 + 12, "sha256": None}
    record = make_record(KIND, settings={}, outputs=[entry])
    assert unmet(record, kind=KIND, settings={}, inputs={}, folder=run) is None
    (run / "evaluate" / "ours" / "units" / "s1.json").write_text("{}\n")
    assert unmet(record, kind=KIND, settings={}, inputs={}, folder=run) == \
        "evaluate/ours has 18 bytes, not the 15 recorded"


def test_an_output_outside_the_folder_keeps_its_absolute_path(tmp_path):
    (tmp_path / "run").mkdir()
    notes = tmp_path / "notes.csv"
    notes.write_text("ROW_ID\n")
    entry = output_entry(notes, tmp_path / "run", sha256="f" * 64)
    assert entry == {"path": str(notes.resolve()), "size": 7, "sha256": "f" * 64}


def test_the_one_settings_message():
    assert settings_mismatch("out", SETTINGS, dict(SETTINGS)) is None
    assert settings_mismatch("out", SETTINGS, {"max_seq_length": 256, "dupe_factor": 10}) == (
        "out: made with other settings (dupe_factor: 5 -> 10; max_seq_length: 128 -> 256); "
        "use a new folder, or the same settings")
    assert settings_mismatch("out", {"a": None}, {"b": "x"}, "use another --output_dir") == (
        "out: made with other settings (a: None -> unset; b: unset -> 'x'); use another --output_dir")
    [long] = settings_diff({"splitter": "p" * 200}, {"splitter": "q"})
    assert long == "splitter: '" + "p" * 76 + "... -> 'q'"


def test_describe_input_change():
    a = [{"path": "/n.csv", "size": 10, "sha256": "1"}]
    assert describe_input_change(None, a) == "not an input before"
    assert describe_input_change(a, None) == "no longer given"
    assert describe_input_change(a, [dict(a[0], size=12, sha256="2")]) == "/n.csv: size 10 -> 12 bytes"
    assert describe_input_change(a, [dict(a[0], sha256="2")]) == "/n.csv: content changed (same size, other sha256)"
    assert describe_input_change(a, a + [{"path": "/m.csv", "size": 1, "sha256": "3"}]) == "/m.csv added"


def test_a_hash_the_writer_computed_is_cached_for_the_next_reader(tmp_path):
    """section_split hashes a text shard while writing it; create_pretraining_data then
    fingerprints the same file as its shard's input and must get that hash from the cache,
    not read the shard again."""
    shard = tmp_path / "out" / "shard.txt"
    shard.parent.mkdir()
    shard.write_bytes(b"one sentence\n")
    facts = FileFacts(tmp_path / "cache")
    written = output_entry(shard, shard.parent, sha256=hashlib.sha256(b"one sentence\n").hexdigest(), facts=facts)

    def read_again(path):
        raise AssertionError(f"{path} was hashed again")

    assert FileFacts(tmp_path / "cache").get(shard, "sha256", read_again) == written["sha256"]
