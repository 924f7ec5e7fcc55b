"""Build a BERT WordPiece vocab.txt from sentence-per-line text, for the demo.

    python -m bert.build_vocab --input_file='out/text/*.txt' --output_file=vocab.txt \\
        [--vocab_size=8000] [--do_lower_case=false] [--min_frequency=2]

The published clinical models reuse BERT-Base's cased vocabulary, which cannot be
downloaded here; the demo therefore trains a small one on its own corpus with the
`tokenizers` library's WordPiece trainer. The trainer is fed words split exactly as
`bert.tokenization.BasicTokenizer` splits them (Google's basic steps: cleaning,
CJK spacing, whitespace split, lower-casing + accent stripping only when uncased,
punctuation split), so the learned pieces are the ones `FullTokenizer` will look up.
(The trainer's own BertNormalizer + BertPreTokenizer would be the same on ASCII but not
on thousands of other code points; see _batches.)

Output: one token per line, ids in line order: [PAD] [UNK] [CLS] [SEP] [MASK], then
`##c` for every character c of the alphabet, the characters themselves, then the learned
pieces (continuations prefixed `##`). The same input and flags give the same file (see
build_vocab for how); the file appears atomically (utils.atomic).
"""
from __future__ import annotations

import os
import re
import sys
from typing import Iterator, Sequence

from utils.atomic import atomic_open
from utils.cli import UsageError, UserError, absl_run
from utils.files import expand_input_files
from utils.progress import Progress

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_INPUT_CHARS_PER_WORD = 200   # as Google's WordpieceTokenizer default; training ignores it


class VocabInputError(UserError):
    """Bad flags or input files; the message names the file or flag."""


class VocabOutputError(UserError):
    """The vocab cannot be written (read-only or full folder); the message names it."""


# Printable ASCII (+ tab): every character is a letter/digit, punctuation by Google's
# ASCII ranges, or whitespace, so BasicTokenizer reduces to this regex (plus lower()).
_ASCII_LINE = re.compile(r"[\t\x20-\x7e]*")
_ASCII_TOKENS = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9\t ]")


def _as_fed(line: str, basic) -> str:
    """A line as given to the trainer: Google BasicTokenizer's tokens joined by single
    spaces (the trainer then only splits on " "). A regex does it for printable-ASCII
    lines, where it is provably the same; other lines go through BasicTokenizer."""
    if _ASCII_LINE.fullmatch(line):
        return " ".join(_ASCII_TOKENS.findall(line.lower() if basic.do_lower_case else line))
    return " ".join(basic.tokenize(line))


def _batches(files: Sequence[str], do_lower_case: bool, progress: Progress,
             size: int = 2000) -> Iterator[list[str]]:
    """The files' non-blank lines as the trainer must see them (see _as_fed), in lists of
    `size` (the trainer takes batches faster than single lines).

    Why not the trainer's own BertNormalizer + BertPreTokenizer: they follow an older
    Unicode and other cleaning rules than Google's BasicTokenizer (bert.tokenization)
    and disagree on thousands of code points (e.g. U+061D, U+2E43 and newer
    punctuation, private-use characters, which they drop), so some vocab pieces would not
    be the ones FullTokenizer looks up. Bytes that are not UTF-8 are dropped, as
    tokenization.convert_to_unicode does.
    """
    from bert.tokenization import BasicTokenizer

    basic = BasicTokenizer(do_lower_case=do_lower_case)
    batch: list[str] = []
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="ignore") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    batch.append(_as_fed(line, basic))
                    if len(batch) == size:
                        progress.update(len(batch))
                        yield batch
                        batch = []
        except OSError as exc:  # reading this input file: its problem, not a bug
            raise VocabInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if batch:
        progress.update(len(batch))
        yield batch


def _alphabet(input_files: Sequence[str], do_lower_case: bool, limit_alphabet: int) -> list[str]:
    """The `limit_alphabet` most frequent characters of the text as fed, ties broken by
    code point (tokenizers breaks them with an unstable sort over a hash map)."""
    import numpy as np

    code_counts = np.zeros(0x110000, dtype=np.int64)
    progress = Progress("lines", label="build_vocab: counting characters")
    for batch in _batches(input_files, do_lower_case, progress, size=50_000):
        codes = np.frombuffer("".join(batch).encode("utf-32-le"), dtype=np.uint32)
        code_counts += np.bincount(codes, minlength=0x110000)
    progress.done()
    code_counts[ord(" ")] = 0   # the word separator; BasicTokenizer words hold no str.isspace() char
    codes = np.flatnonzero(code_counts)
    order = sorted(codes.tolist(), key=lambda c: (-int(code_counts[c]), c))
    return [chr(c) for c in order[:limit_alphabet]]


def build_vocab(input_files: Sequence[str], vocab_size: int = 8000, do_lower_case: bool = False,
                min_frequency: int = 2, limit_alphabet: int = 1000) -> list[str]:
    """Train a WordPiece vocabulary on the files' lines; returns tokens in id order."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise VocabInputError(f"--vocab_size={vocab_size}: must exceed the {len(SPECIAL_TOKENS)} special tokens")
    if min_frequency < 1 or limit_alphabet < 1:
        raise VocabInputError(f"--min_frequency={min_frequency}, --limit_alphabet={limit_alphabet}: "
                              "must be at least 1")
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##",
                                           max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
    # No normalizer; words are split on " " only: the text arrives pre-tokenized exactly
    # like BasicTokenizer's output (_as_fed).
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="removed")
    alphabet = _alphabet(input_files, do_lower_case, limit_alphabet)
    if not alphabet:
        raise VocabInputError(f"no text in {', '.join(input_files)}")
    # Determinism: the trainer numbers "##c" pieces in hash-map order of the words, and
    # merge ties are broken by those numbers, so two runs could learn different
    # vocabularies. Declaring every "##c" up front (as trainer "special" tokens; only
    # their ids matter, the tokenizer object is discarded) and fixing the alphabet makes
    # every id, hence every tie-break, the same on every run.
    continuation = ["##" + c for c in alphabet]
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
        special_tokens=list(SPECIAL_TOKENS) + continuation, initial_alphabet=alphabet,
        limit_alphabet=len(alphabet), continuing_subword_prefix="##")
    progress = Progress("lines", label="build_vocab: training")
    tokenizer.train_from_iterator(_batches(input_files, do_lower_case, progress), trainer=trainer)
    progress.done()
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    tokens = sorted(vocab, key=vocab.__getitem__)
    if tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS or sorted(vocab.values()) != list(range(len(tokens))):
        raise AssertionError(f"unexpected vocab layout from tokenizers: {tokens[:8]}")
    return tokens


def write_vocab(tokens: Sequence[str], path: str) -> None:
    """One token per line (what tokenization.load_vocab reads), written atomically; a
    folder that cannot be written is one VocabOutputError naming it (no temp is left)."""
    try:
        with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(t + "\n" for t in tokens)
    except OSError as exc:  # only the write is wrapped: an OSError here is the disk's
        folder = os.path.dirname(os.path.abspath(path))
        raise VocabOutputError(f"{folder}: cannot write {os.path.basename(path)} there "
                               f"({exc.strerror or exc})") from None


def define_flags() -> None:
    from absl import flags
    flags.DEFINE_string("input_file", None, "Sentence-per-line text files (comma-separated globs).")
    flags.DEFINE_string("output_file", "vocab.txt", "Where to write the vocabulary.")
    flags.DEFINE_integer("vocab_size", 8000, "Vocabulary size, special tokens included.")
    flags.DEFINE_bool("do_lower_case", False, "Lower-case and strip accents (uncased model); "
                      "default cased, like clinicalBERT.")
    flags.DEFINE_integer("min_frequency", 2, "Minimum count for a merge to enter the vocabulary.")
    flags.DEFINE_integer("limit_alphabet", 1000, "Keep at most this many distinct characters "
                         "(the rarest others become [UNK]).")
    flags.mark_flags_as_required(["input_file"])


def main(argv: Sequence[str]) -> int:
    from absl import flags
    F = flags.FLAGS
    if len(argv) > 1:
        raise UsageError(f"unexpected argument {argv[1]!r} (every option is a --flag)")
    files = expand_input_files(F.input_file)
    tokens = build_vocab(files, F.vocab_size, F.do_lower_case, F.min_frequency, F.limit_alphabet)
    write_vocab(tokens, F.output_file)
    print(f"build_vocab: wrote {len(tokens):,} tokens to {F.output_file} "
          f"({sum(t.startswith('##') for t in tokens):,} continuation pieces) from {len(files)} file(s)",
          file=sys.stderr)
    return 0


def _cli() -> None:
    define_flags()
    absl_run("build_vocab", main)


if __name__ == "__main__":
    _cli()
