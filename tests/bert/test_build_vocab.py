"""bert.build_vocab: a valid, deterministic BERT vocab that fits bert.tokenization."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bert import build_vocab as bv
from bert.tokenization import BasicTokenizer, FullTokenizer
from utils.cli import UserError
from data_prep.notes import iter_notes
from data_prep.synthetic_notes import write_synthetic_notes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Sentence-per-line-ish text from synthetic notes, plus a few non-ASCII lines."""
    d = tmp_path_factory.mktemp("vocab")
    write_synthetic_notes(d / "notes.csv", 400, seed=11)
    lines = [line for note in iter_notes(d / "notes.csv") for line in note.text.split("\n") + [""]]
    lines += ["Café naïve résumé Ångström"] * 3 + ["«quoted» — dash… ½"] * 3
    # characters the tokenizers library's Bert normalizer/pre-tokenizer treat unlike
    # BasicTokenizer (newer punctuation, private use): must still be in the vocab
    lines += ["p\u061dlw x\u2e43y \ue000private"] * 3
    lines += ["para\u2028sep"] * 3     # U+2028 is str.isspace(): a word break for BasicTokenizer
    (d / "a.txt").write_text("\n".join(lines[: len(lines) // 2]) + "\n", encoding="utf-8")
    (d / "b.txt").write_text("\n".join(lines[len(lines) // 2:]) + "\n", encoding="utf-8")
    return d


def _build(corpus: Path, out: Path, **kw) -> list[str]:
    tokens = bv.build_vocab(bv.expand_input_files(f"{corpus}/a.txt,{corpus}/b*.txt"), **kw)
    bv.write_vocab(tokens, str(out))
    return tokens


def test_valid_bert_vocab_that_fits_full_tokenizer(corpus, tmp_path):
    out = tmp_path / "vocab.txt"
    tokens = _build(corpus, out, vocab_size=2000)
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and lines[:-1] == tokens
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(tokens) == len(set(tokens)) <= 2000
    assert all(t and not any(c.isspace() for c in t) for t in tokens)
    assert sum(t.startswith("##") for t in tokens) > 100
    assert {"Discharge", "patient", "##s"} <= set(tokens)
    # cased: accents kept
    assert "é" in tokens and "##é" in tokens

    tok = FullTokenizer(str(out), do_lower_case=False)
    words = unk = 0
    for path in (corpus / "a.txt", corpus / "b.txt"):
        for line in path.read_text(encoding="utf-8").split("\n"):
            pieces = tok.tokenize(line)
            words += len(pieces)
            unk += pieces.count("[UNK]")
            assert tok.tokenize_to_ids(line) == tok.convert_tokens_to_ids(pieces)
    assert words > 100_000 and unk == 0      # every in-corpus character is in the alphabet
    pieces = tok.tokenize("para\u2028sep \ue000private")
    assert "[UNK]" not in pieces and "".join(p.removeprefix("##") for p in pieces) == "parasep\ue000private"
    assert all(t.strip() == t for t in tokens)     # load_vocab reads every line back unchanged
    assert tok.tokenize("Admission Date: [**2151-7-16**]")[:4] == ["Admission", "Date", ":", "["]


def _stress_lines(n: int, seed: int) -> list[str]:
    """Random lines mixing ASCII letters with control characters, accents, combining
    marks, CJK, Hangul, RTL scripts, general punctuation, separators, full-width forms."""
    import random
    r = random.Random(seed)
    ranges = [(0x0, 0x1F), (0x20, 0x7E), (0x80, 0x9F), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF),
              (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1E00, 0x1EFF),
              (0x2000, 0x206F), (0x2100, 0x214F), (0x3000, 0x303F), (0x4E00, 0x4E80), (0xAC00, 0xAC80),
              (0xFE00, 0xFE6F), (0xFF00, 0xFFEF), (0x1F300, 0x1F5FF)]
    lines = []
    for _ in range(n):
        chars = []
        for _ in range(r.randint(1, 30)):
            lo, hi = r.choice(ranges) if r.random() < 0.3 else (0x61, 0x7A)
            chars.append(chr(r.randint(lo, hi)) + (" " if r.random() < 0.2 else ""))
        lines.append("".join(chars))
    return lines


@pytest.mark.parametrize("lower", [False, True])
def test_trainer_sees_basic_tokenizer_words(lower):
    """The words the trainer gets (line as fed, split by its " " pre-tokenizer) are
    exactly Google's BasicTokenizer tokens: on printable ASCII (the regex path), on
    Unicode stress lines, and on characters where the tokenizers library's own
    BertNormalizer/BertPreTokenizer disagree with BasicTokenizer."""
    from tokenizers import pre_tokenizers
    pre = pre_tokenizers.Split(" ", behavior="removed")
    basic = BasicTokenizer(do_lower_case=lower)
    import random
    r = random.Random(2)
    ascii_lines = ["".join(r.choice("aZ9 \t.,;:!?'\"()[]{}<>=+-*/\\|^~`@#$%&_") for _ in range(r.randint(1, 40)))
                   for _ in range(2000)]
    lines = ["Café naïve résumé ÅNGSTRÖM", "中文字 mixed中文 ok", "a\x00b\ufffdc\x07d\te\x0cf",
             "$5+3<=4>^`|~ x", "«quoted» — dash…", "[**Hospital1 18**] 1.5mg/kg x2",
             "Ⅻ ½ ² ﬁ", "don't  U.S.A.", "\u200bzero\u200bwidth", "e\u0301 combining",
             "\u00a0nbsp\u3000ideo", "line\u2028sep \x85nel İstanbul",
             "p\u061dlw e", "x\u2e43y \ue000private\U000F0001 \u166d"] + ascii_lines + _stress_lines(2000, seed=1)
    for line in lines:
        fed = bv._as_fed(line, basic)
        assert [w for w, _ in pre.pre_tokenize_str(fed)] == basic.tokenize(line), ascii(line)


def test_uncased(corpus, tmp_path):
    tokens = _build(corpus, tmp_path / "v.txt", vocab_size=1500, do_lower_case=True)
    assert not any(t.lower() != t for t in tokens[5:])
    assert "é" not in tokens and "discharge" in tokens


def test_deterministic_across_processes(corpus, tmp_path):
    first = _build(corpus, tmp_path / "v1.txt", vocab_size=2500)
    assert _build(corpus, tmp_path / "v2.txt", vocab_size=2500) == first
    # A fresh interpreter (other hash seeds) through the CLI: byte-identical file.
    out = tmp_path / "v3.txt"
    run = subprocess.run(
        [sys.executable, "-m", "bert.build_vocab", f"--input_file={corpus}/a.txt,{corpus}/b*.txt",
         f"--output_file={out}", "--vocab_size=2500"],
        cwd=REPO, capture_output=True, text=True, env={"PYTHONHASHSEED": "7", "PATH": ""})
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == (tmp_path / "v1.txt").read_bytes()


def test_bad_input(tmp_path):
    # the project's one input-list expander (utils.files), with its message
    with pytest.raises(UserError, match=r".*nothing\*\.txt: input glob matches no file"):
        bv.expand_input_files(f"{tmp_path}/nothing*.txt")
    assert issubclass(bv.VocabInputError, UserError) and issubclass(bv.VocabOutputError, UserError)
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(bv.VocabInputError, match=r"no text in .*blank\.txt"):
        bv.build_vocab([str(tmp_path / "blank.txt")])
    with pytest.raises(bv.VocabInputError, match="--vocab_size=3"):
        bv.build_vocab([str(tmp_path / "blank.txt")], vocab_size=3)
    # CLI: one-line error, exit 1, no output file
    out = tmp_path / "vocab.txt"
    run = subprocess.run([sys.executable, "-m", "bert.build_vocab", f"--input_file={tmp_path}/none.txt",
                          f"--output_file={out}"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 1 and f"build_vocab: error: {tmp_path}/none.txt: input file not found" in run.stderr
    assert not out.exists()


def test_unwritable_output_folder_and_help(tmp_path):
    """A folder the vocab cannot be written to is one line naming it (no temp left);
    --help exits 0 and shows each flag with its default."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("Pt is a 83 yo F with CHF.\nShe has CHF.\n" * 50, "utf-8")
    blocker = tmp_path / "file"  # a file where the output folder should be: ENOTDIR for root too
    blocker.write_text("x")
    run = subprocess.run([sys.executable, "-m", "bert.build_vocab", f"--input_file={corpus}",
                          f"--output_file={blocker}/sub/vocab.txt", "--vocab_size=200"],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert f"build_vocab: error: {blocker}/sub: cannot write vocab.txt there (" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "file"]
    run = subprocess.run([sys.executable, "-m", "bert.build_vocab", "--help"], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for flag, default in [("vocab_size", "8000"), ("min_frequency", "2"), ("limit_alphabet", "1000"),
                          ("output_file", "vocab.txt"), ("do_lower_case", "false")]:
        assert f"{flag}: " in run.stdout and f"(default: '{default}')" in run.stdout, flag
