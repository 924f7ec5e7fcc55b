"""bert.create_pretraining_data: golden records (bytes and parsed), native fast path ==
pure-Python reference path on many settings, reading rules, MT19937 replay, CLI errors,
parallel shard mode with sidecars."""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bert import create_pretraining_data as cpd
from bert import tokenization
from tests.helpers import read_records

REPO = Path(__file__).resolve().parents[2]
native_only = pytest.mark.skipif(cpd._cpd_native is None,
                                 reason="bert._cpd_native not built (bash scripts/ensure_venv.sh or pip install -e . builds it)")


def golden_case(g: Path, name: str):
    """(inputs, vocab, do_lower_case, other flags, golden output) of one case of cases.json
    in the golden folder `g`."""
    case = {c["name"]: c for c in json.loads((g / "cases.json").read_text())}[name]
    flags = dict(case["flags"])
    lower = flags.pop("do_lower_case") == "True"
    inputs = [str(g / x) for x in case["input"]]
    return inputs, str(g / case["vocab"]), lower, flags, g / name / "out0.tfrecord"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bert.create_pretraining_data", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


CASES = ["clin_cased_clinicalbert", "sample_uncased_defaults"]


@pytest.mark.parametrize("use_native", [pytest.param(True, marks=native_only), False])
@pytest.mark.parametrize("name", CASES)
def test_golden_bytes(golden_cpd, tmp_path, name, use_native):
    """Same records, same order; with the golden file's map-entry order, same bytes."""
    inputs, vocab, lower, flags, golden = golden_case(golden_cpd, name)
    gold = read_records(golden)
    order = tuple(gold[0])  # the golden file's map-entry order
    out = tmp_path / "out.tfrecord"
    counts = cpd.run(inputs, [str(out)], tokenization.FullTokenizer(vocab, lower),
                     use_native=use_native, feature_order=order, **flags)
    assert counts["instances"] == len(gold)
    assert out.read_bytes() == golden.read_bytes()


@native_only
def test_cli_default_order_parsed_equals_golden(golden_cpd, tmp_path):
    inputs, vocab, lower, flags, golden = golden_case(golden_cpd, "clin_cased_clinicalbert")
    out = tmp_path / "o.tfrecord"
    r = cli("--input_file", ",".join(inputs), "--output_file", str(out), "--vocab_file", vocab,
            f"--do_lower_case={lower}", *[f"--{k}={v}" for k, v in flags.items()])
    assert r.returncode == 0, r.stderr
    assert "native (C) path" in r.stderr
    assert "300 documents, 4,577 segments, 8,303 instances" in r.stderr
    assert "[CLS]" not in r.stderr  # no example text unless --log_examples
    mine, gold = read_records(out), read_records(golden)
    assert mine == gold
    assert tuple(mine[0]) == cpd.FEATURES  # Google's insertion order by default
    first = gold[0]
    assert len(first["input_ids"]) == 128 and len(first["masked_lm_ids"]) == 20
    assert first["masked_lm_weights"].count(1.0) == sum(1 for p in first["masked_lm_ids"] if p)


@native_only
def test_tfrecord_framing_is_valid_for_tensorflow(golden_cpd, tmp_path):
    """TensorFlow's own reader (which checks both CRCs) reads the native output."""
    import tensorflow as tf
    inputs, vocab, lower, flags, _ = golden_case(golden_cpd, "sample_uncased_defaults")
    out = tmp_path / "o.tfrecord"
    cpd.run(inputs, [str(out)], tokenization.FullTokenizer(vocab, lower), use_native=True, **flags)
    recs = [r.numpy() for r in tf.data.TFRecordDataset(str(out))]
    assert recs == list(cpd.iter_records(out))
    ex = tf.train.Example.FromString(recs[0])
    assert list(ex.features.feature["input_ids"].int64_list.value) == cpd.parse_example(recs[0])["input_ids"]


# --------------------------------------------------- native == reference, many settings

HOSTILE_LINES = ["Café naïve Straße – 38 °C, 50 µg", "中文病历 记录 abc", "a\u200bb\u00adc \u3000 d",
                 "e\u0301 İstanbul ﬁne", "\x00\ufffd", "x\x0by \x1f z", "a" * 201 + " tail",
                 "한국어 ひらがな Ωmega", "\U0001f600 emoji line"]


@pytest.fixture(scope="module")
def mixed_inputs(golden_cpd, tmp_path_factory):
    """Two input files (documents continue across them) mixing clinical lines and hostile
    Unicode, with a tokenless line and a lone \\r inside a line."""
    lines = (golden_cpd / "clin.txt").read_text("utf-8").split("\n")[:900]
    r = random.Random(5)
    for k in range(0, len(lines), 13):
        lines.insert(k, r.choice(HOSTILE_LINES))
    lines.insert(40, "\u200b\u200b")  # no tokens: skipped, does not start a document
    lines.insert(41, "left\rright")
    d = tmp_path_factory.mktemp("mixed")
    half = len(lines) // 2
    (d / "a.txt").write_text("\n".join(lines[:half]) + "\n", "utf-8")
    (d / "b.txt").write_text("\n".join(lines[half:]), "utf-8")
    return [str(d / "a.txt"), str(d / "b.txt")]


SETTINGS = [
    dict(lower=False, outputs=1, kw=dict(dupe_factor=2)),
    dict(lower=False, outputs=3, kw=dict(dupe_factor=2, do_whole_word_mask=True, random_seed=7)),
    dict(lower=True, outputs=2, kw=dict(dupe_factor=2, random_seed=1, do_whole_word_mask=True)),
    dict(lower=True, outputs=1, kw=dict(max_seq_length=512, max_predictions_per_seq=76,
                                        dupe_factor=2, random_seed=99)),
    dict(lower=False, outputs=1, kw=dict(max_seq_length=5, max_predictions_per_seq=1,
                                         dupe_factor=1, short_seq_prob=1.0)),
    dict(lower=False, outputs=2, kw=dict(max_seq_length=64, max_predictions_per_seq=64,
                                         masked_lm_prob=1.0, short_seq_prob=0.5, dupe_factor=3,
                                         random_seed=2**40 + 3)),
]


@native_only
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s["kw"].items()))
def test_native_equals_reference(mixed_inputs, cased_vocab, uncased_vocab, tmp_path, setting):
    vocab = uncased_vocab if setting["lower"] else cased_vocab
    tok = tokenization.FullTokenizer(str(vocab), setting["lower"])
    outs = {}
    for native in (False, True):
        files = [str(tmp_path / f"{native}-{i}.tfrecord") for i in range(setting["outputs"])]
        counts = cpd.run(mixed_inputs, files, tok, use_native=native, **setting["kw"])
        outs[native] = (counts, [Path(f).read_bytes() for f in files])
    assert outs[True] == outs[False]
    counts, blobs = outs[True]
    assert counts["instances"] == sum(len(read_records(f)) for f in
                                      tmp_path.glob("True-*.tfrecord")) > 0
    assert all(blobs)


@native_only
def test_native_equals_reference_with_duplicate_vocab_tokens(mixed_inputs, cased_vocab, tmp_path):
    """Random replacements draw from the distinct tokens (first-occurrence order) and map
    to the LAST id of a repeated token (tokenization.load_vocab): both paths must agree."""
    lines = cased_vocab.read_text("utf-8").split("\n")[:6000]
    v = tmp_path / "dup_vocab.txt"
    v.write_text("\n".join(lines + ["the", "##s", "[MASK]", "patient", "##ing"] + lines[1000:1200]), "utf-8")
    tok = tokenization.FullTokenizer(str(v), False)
    assert tok.vocab["the"] != lines.index("the")
    blobs = []
    for native in (False, True):
        out = tmp_path / f"{native}.tfrecord"
        cpd.run(mixed_inputs, [str(out)], tok, use_native=native, dupe_factor=1,
                do_whole_word_mask=True, masked_lm_prob=0.5, max_predictions_per_seq=40)
        blobs.append(out.read_bytes())
    assert blobs[0] == blobs[1]


@native_only
def test_native_equals_reference_single_document(tmp_path, uncased_vocab):
    """One document: every random-next pick is the document itself after 10 tries, and
    randint(0, 0) still consumes draws (Python's _randbelow(1))."""
    inp = tmp_path / "one.txt"
    inp.write_text("\n".join(f"Sentence number {i} of the only note, with words." for i in range(30)), "utf-8")
    tok = tokenization.FullTokenizer(str(uncased_vocab), True)
    blobs = []
    for native in (False, True):
        out = tmp_path / f"{native}.tfrecord"
        assert cpd.run([str(inp)], [str(out)], tok, use_native=native, max_seq_length=32,
                       dupe_factor=3)["documents"] == 1
        blobs.append(out.read_bytes())
    assert blobs[0] == blobs[1] and blobs[0]


def test_log_examples_is_opt_in(good):
    r = cli(f"--input_file={good['input']}", f"--output_file={good['out']}",
            f"--vocab_file={good['vocab']}", "--do_lower_case=False", "--log_examples")
    assert r.returncode == 0, r.stderr
    assert "*** Example ***" in r.stderr and "tokens: [CLS]" in r.stderr


def test_reading_rules(tmp_path, cased_vocab):
    """Empty lines separate documents, across files; tokenless lines are skipped; \\r does
    not end a line; empty documents vanish."""
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"\n\nOne two\r three\n\x00\nfour\n")
    b.write_bytes(b"five\n\n\n  \nsix seven\n\xe2\x80\x8b\n")
    tok = tokenization.FullTokenizer(str(cased_vocab), False)
    docs = cpd.read_documents([str(a), str(b)], tok)
    assert docs == [[["One", "two", "three"], ["four"], ["five"]], [["six", "seven"]]]
    flat = cpd.read_flat_documents([str(a), str(b)], tok)
    assert list(flat.doc_start) == [0, 3, 4] and list(flat.seg_start) == [0, 3, 4, 5, 7]
    assert list(flat.tokens) == tok.convert_tokens_to_ids(
        ["One", "two", "three", "four", "five", "six", "seven"])


@native_only
def test_mt19937_replay_matches_python_random():
    r = random.Random(12345)
    r.random()
    state = r.getstate()[1]
    ops = [0, 1, 2, 3, 7, 8, 100, 28996, 2**31, 2**32 - 1, 1, 0] * 60
    ours = cpd._cpd_native.draws(state, ops)
    want = [r.random() if k == 0 else r._randbelow(k) for k in ops]
    assert ours == want


@native_only
def test_crc32c_routes_agree():
    """The hardware and table CRC32C routes agree, and match the TFRecord check value
    (masked CRC of the 8 length bytes of the first golden record, written by TF)."""
    r = random.Random(3)
    for n in [0, 1, 7, 8, 9, 63, 64, 1000, 4097]:
        data = bytes(r.getrandbits(8) for _ in range(n))
        hw, table = cpd._cpd_native.masked_crc32c(data)
        assert hw == table
    # CRC-32C check value of "123456789" is 0xE3069283 (RFC 3720); masked per TFRecord.
    c = 0xE3069283
    assert cpd._cpd_native.masked_crc32c(b"123456789")[1] == (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ------------------------------------------------------------------------ bad input

@pytest.fixture
def good(tmp_path, cased_vocab):
    inp = tmp_path / "in.txt"
    inp.write_text("Pt is a 83 yo F.\nShe has CHF.\n\nSecond note here.\nMore text.\n", "utf-8")
    return {"input": str(inp), "vocab": str(cased_vocab), "out": tmp_path / "out" / "o.tfrecord"}


def _bad(good, *extra, **over):
    args = {"--input_file": good["input"], "--output_file": str(good["out"]),
            "--vocab_file": good["vocab"], "--do_lower_case": "False"}
    args.update(over)
    r = cli(*[f"{k}={v}" for k, v in args.items() if v is not None], *extra)
    assert r.returncode != 0
    errs = [l for l in r.stderr.splitlines() if "error" in l.lower()]
    assert errs, r.stderr
    out_dir = Path(args["--output_file"] or good["out"]).parent
    assert not out_dir.exists() or not any(out_dir.iterdir())  # no (partial) output at all
    return errs[-1]


def test_error_missing_input(good, tmp_path):
    assert f"{tmp_path}/nope.txt: input file not found" in _bad(good, **{"--input_file": f"{tmp_path}/nope.txt"})


def test_error_glob_matches_nothing(good, tmp_path):
    assert f"{tmp_path}/*.none: input glob matches no file" in _bad(good, **{"--input_file": f"{tmp_path}/*.none"})


def test_error_invalid_utf8(good, tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"fine line\nsecond \xff line\n")
    assert f"{p}: line 2: invalid UTF-8 at byte offset 17" in _bad(good, **{"--input_file": str(p)})


def test_error_vocab_missing_and_lacking_specials(good, tmp_path):
    assert f"{tmp_path}/v.txt: vocab file not found" in _bad(good, **{"--vocab_file": f"{tmp_path}/v.txt"})
    v = tmp_path / "v2.txt"
    v.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n", "utf-8")
    assert f"{v}: vocab lacks [MASK]" in _bad(good, **{"--vocab_file": str(v)})
    v.write_bytes(b"[PAD]\n[UNK]\nbad\xe9\n")
    assert f"{v}: line 3: invalid UTF-8 at byte offset 15" in _bad(good, **{"--vocab_file": str(v)})
    assert f"{tmp_path}: input file not found (a directory)" in _bad(good, **{"--input_file": str(tmp_path)})


def test_error_bad_numbers(good):
    assert "--max_seq_length=4: must be between 5" in _bad(good, **{"--max_seq_length": "4"})
    assert "--max_seq_length=70000" in _bad(good, **{"--max_seq_length": "70000"})
    assert "--max_predictions_per_seq=200" in _bad(good, **{"--max_predictions_per_seq": "200"})
    assert "--masked_lm_prob=0.0: must be in (0, 1]" in _bad(good, **{"--masked_lm_prob": "0"})
    assert "--masked_lm_prob=1.5" in _bad(good, **{"--masked_lm_prob": "1.5"})


def test_error_no_documents(good, tmp_path):
    p = tmp_path / "empty.txt"
    p.write_text("\n\n \u200b\n\n", "utf-8")
    assert f"{p}: input has no documents" in _bad(good, **{"--input_file": str(p)})


def test_error_output_flags(good, tmp_path):
    assert "exactly one of --output_file and --output_dir" in _bad(
        good, f"--output_dir={tmp_path}/out")
    assert "exactly one of" in _bad(good, **{"--output_file": None})


def test_existing_output_untouched_on_error(good, tmp_path):
    good["out"].parent.mkdir()
    good["out"].write_bytes(b"previous")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xc3(\n")
    r = cli(f"--input_file={bad}", f"--output_file={good['out']}", f"--vocab_file={good['vocab']}")
    assert r.returncode == 1 and "invalid UTF-8 at byte offset 0" in r.stderr
    assert good["out"].read_bytes() == b"previous"
    assert sorted(p.name for p in good["out"].parent.iterdir()) == ["o.tfrecord"]


# ------------------------------------------------------------------- parallel shards

@native_only
def test_parallel_shards_equal_single_runs_and_resume(mixed_inputs, cased_vocab, tmp_path):
    shards = tmp_path / "in"
    shards.mkdir()
    for i, f in enumerate(mixed_inputs):
        (shards / f"s{i}.txt").write_bytes(Path(f).read_bytes())
    out = tmp_path / "out"
    common = ["--vocab_file", str(cased_vocab), "--do_lower_case=False", "--dupe_factor=2"]
    r = cli("--input_file", f"{shards}/*.txt", "--output_dir", str(out), "--num_workers=2", *common)
    assert r.returncode == 0, r.stderr
    for i in range(2):
        single = tmp_path / f"single{i}.tfrecord"
        r1 = cli("--input_file", str(shards / f"s{i}.txt"), "--output_file", str(single), *common)
        assert r1.returncode == 0, r1.stderr
        assert (out / f"s{i}.tfrecord").read_bytes() == single.read_bytes()
        side = json.loads((out / f"s{i}.tfrecord.json").read_text())
        assert side["counts"]["instances"] == len(read_records(single))
        assert side["inputs"]["text"][0]["size"] == (shards / f"s{i}.txt").stat().st_size
        assert side["settings"]["random_seed"] == 12345
    # rerun: both skipped; change one shard: only it is redone
    before = (out / "s0.tfrecord").stat().st_mtime_ns
    r = cli("--input_file", f"{shards}/*.txt", "--output_dir", str(out), "--num_workers=2", *common)
    assert r.returncode == 0 and "2 skipped" in r.stderr, r.stderr
    with open(shards / "s1.txt", "a", encoding="utf-8") as f:
        f.write("\n\nA new note with new words.\nAnd another line.\n")
    r = cli("--input_file", f"{shards}/*.txt", "--output_dir", str(out), "--num_workers=1", *common)
    assert r.returncode == 0 and "1 skipped" in r.stderr, r.stderr
    assert (out / "s0.tfrecord").stat().st_mtime_ns == before
    # a damaged output whose sidecar no longer matches is redone
    good0 = (out / "s0.tfrecord").read_bytes()
    (out / "s0.tfrecord").write_bytes(good0[:100])
    r = cli("--input_file", f"{shards}/*.txt", "--output_dir", str(out), *common)
    assert r.returncode == 0 and "1 skipped" in r.stderr, r.stderr
    assert (out / "s0.tfrecord").read_bytes() == good0
    # seed_per_shard: shard i uses seed + i
    r = cli("--input_file", f"{shards}/*.txt", "--output_dir", str(tmp_path / "o2"),
            "--seed_per_shard", *common)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o2/s0.tfrecord").read_bytes() == (out / "s0.tfrecord").read_bytes()
    assert json.loads((tmp_path / "o2/s1.tfrecord.json").read_text())["settings"]["random_seed"] == 12346
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


# ------------------------------------------------------------- memory (issue 12)

# VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's RSS when it was forked
# (Linux carries the pre-exec high-water mark over), i.e. the test process's own size.
_PEAK_WRAPPER = (
    "import sys, runpy; sys.argv = ['create_pretraining_data'] + sys.argv[1:]\n"
    "try:\n    runpy.run_module('bert.create_pretraining_data', run_name='__main__')\n"
    "finally:\n    print('PEAK', open('/proc/self/status').read().split('VmHWM:')[1].split()[0],"
    " file=sys.stderr)")


def _peak_rss(*args: str) -> int:
    """Peak RSS in bytes of one CLI run in a fresh process."""
    r = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *args], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return int([l for l in r.stderr.splitlines() if l.startswith("PEAK")][-1].split()[1]) * 1024


@native_only
@pytest.mark.parametrize("mode", ["output_file", "output_dir"])
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc")
def test_memory_grows_by_under_4_bytes_per_byte_of_text(tmp_path, cased_vocab, mode):
    """Peak RSS of the default CLI grows by < 4 bytes per byte of input text (the goal;
    the requirement is 6; before the reference-based instance store it was ~15.5). The
    slope between a 1 MB and a 5 MB shard is what a 1 GB shard costs per byte (measured
    there: bench/README.md), without the fixed cost of the interpreter and imports."""
    from data_prep.synthetic_corpus import make_corpus

    sizes, peaks = [], []
    for docs in (800, 4000):
        inp = tmp_path / f"in{docs}" / "text.txt"
        inp.parent.mkdir()
        inp.write_text(make_corpus(docs, seed=3), "utf-8")
        out = ["--output_file", str(inp.parent / "o.tfrecord")] if mode == "output_file" else \
            ["--output_dir", str(inp.parent / "out")]
        sizes.append(inp.stat().st_size)
        peaks.append(_peak_rss("--input_file", str(inp), *out, "--vocab_file", str(cased_vocab),
                               "--do_lower_case=False", "--dupe_factor=5"))
    slope = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
    assert sizes[1] - sizes[0] > 3_500_000
    assert 0 < slope < 4.0, f"{slope:.2f} bytes of peak RSS per byte of text"


@native_only
def test_native_equals_reference_with_int32_ids(mixed_inputs, cased_vocab, tmp_path):
    """A vocab over 65,536 entries keeps ids as int32 (uint16 otherwise): same records."""
    lines = cased_vocab.read_text("utf-8").split("\n")
    v = tmp_path / "big_vocab.txt"
    v.write_text("\n".join(lines + [f"zzfiller{i}" for i in range(70_000 - len(lines))] + ["Tail"]),
                 "utf-8")
    tok = tokenization.FullTokenizer(str(v), False)
    small = tokenization.FullTokenizer(str(cased_vocab), False)
    assert tok.id_typecode() == "i" and small.id_typecode() == "H"
    assert cpd.read_flat_documents(mixed_inputs, tok).tokens.typecode == "i"
    blobs = []
    for native in (False, True):
        out = tmp_path / f"{native}.tfrecord"
        cpd.run(mixed_inputs, [str(out)], tok, use_native=native, dupe_factor=2,
                masked_lm_prob=0.5, max_predictions_per_seq=40)  # many random-word ids > 65535
        blobs.append(out.read_bytes())
    assert blobs[0] == blobs[1]
    ids = [i for rec in read_records(tmp_path / "True.tfrecord") for i in rec["input_ids"]]
    assert max(ids) >= 1 << 16


# ------------------------------------------------- output folder, temps, help (issue 9)

@pytest.mark.parametrize("mode", ["--output_file", "--output_dir"])
def test_read_only_output_folder_is_one_line(good, readonly_dir, mode):
    target = readonly_dir / "o.tfrecord" if mode == "--output_file" else readonly_dir / "sub"
    r = cli(f"--input_file={good['input']}", f"{mode}={target}", f"--vocab_file={good['vocab']}",
            "--do_lower_case=False")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"create_pretraining_data: error: {readonly_dir}" in r.stderr
    assert "cannot write output there" in r.stderr
    assert ("Permission denied" in r.stderr or "Operation not permitted" in r.stderr
            or "Read-only file system" in r.stderr)
    assert list(readonly_dir.iterdir()) == []


def _no_bigger_files_than(limit: int):
    """preexec_fn: writes past `limit` bytes fail with EFBIG, like a full disk does with
    ENOSPC (the signal that would kill the process instead is ignored)."""
    import resource
    import signal

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@native_only
@pytest.mark.parametrize("reference", [False, True])
def test_full_disk_mid_write_is_one_line_and_leaves_no_temp(mixed_inputs, cased_vocab, tmp_path, reference):
    out = tmp_path / "out" / "o.tfrecord"
    out.parent.mkdir()
    out.write_bytes(b"previous")
    r = subprocess.run([sys.executable, "-m", "bert.create_pretraining_data",
                        f"--input_file={','.join(mixed_inputs)}", f"--output_file={out}",
                        f"--vocab_file={cased_vocab}", "--do_lower_case=False", "--dupe_factor=2",
                        f"--reference={reference}"],
                       cwd=REPO, capture_output=True, text=True, timeout=300,
                       preexec_fn=_no_bigger_files_than(200_000))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"create_pretraining_data: error: {out.parent}: cannot write output there (File too large)" in r.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.tfrecord"]
    assert out.read_bytes() == b"previous"


def test_stale_temps_of_a_killed_run_are_removed_and_only_those(good, tmp_path):
    out = good["out"]
    out.parent.mkdir()
    stale = out.parent / f".{out.name}.tmp-k1ll3d"
    stale.write_bytes(b"partial")
    other = out.parent / ".notes.txt.tmp-abc123"   # another program's temp: not ours
    mine_elsewhere = tmp_path / f".{out.name}.tmp-zz9"  # another folder: not this run's
    user = out.parent / "readme.txt"
    for p in (other, mine_elsewhere, user):
        p.write_text("keep")
    r = cli(f"--input_file={good['input']}", f"--output_file={out}", f"--vocab_file={good['vocab']}",
            "--do_lower_case=False")
    assert r.returncode == 0, r.stderr
    assert "removed 1 temp file(s) left by an earlier, interrupted run" in r.stderr
    assert not stale.exists() and other.exists() and mine_elsewhere.exists() and user.exists()
    assert out.is_file()


def test_help_exits_0_with_defaults_and_a_line_per_flag():
    r = cli("--help")
    assert r.returncode == 0, r.stderr
    for flag, default in [("max_seq_length", "128"), ("dupe_factor", "10"), ("random_seed", "12345"),
                          ("masked_lm_prob", "0.15"), ("num_workers", "1"), ("do_lower_case", "true")]:
        entry = re.search(rf"\n  --(\[no\])?{flag}: (.*?)(?=\n  --|\Z)", r.stdout, re.S)
        assert entry and f"(default: '{default}')" in entry.group(2), flag
    for flag in ["input_file", "output_file", "output_dir", "vocab_file", "scheduler", "dask_workers",
                 "seed_per_shard", "reference", "log_examples", "short_seq_prob"]:
        assert f"--{flag}: " in r.stdout or f"--[no]{flag}: " in r.stdout, flag


def test_input_errors_are_user_errors():
    from utils.cli import UserError
    assert issubclass(cpd.InputError, UserError) and issubclass(cpd.OutputError, UserError)
    r = cli("--input_file=x", "--vocab_file=y", "--output_file=z", "extra_arg")
    assert r.returncode == 2 and "error: unexpected argument 'extra_arg'" in r.stderr
