"""Input and output of create_pretraining_data: its user errors, reading the
sentence-per-line text (Google's rules), the compact document store of the fast path,
the vocab, the settings check, and turning disk errors into one line.
"""
from __future__ import annotations

import contextlib
import functools
import glob
import os
import tempfile
from array import array
from pathlib import Path
from typing import Callable, Iterator, Sequence

from bert import tokenization
from utils.atomic import is_temp_name
from utils.cli import UserError
from utils.progress import Progress

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]", "[UNK]")


class InputError(UserError):
    """Bad input or flags: reported as one line naming the file, exit status 1."""


class OutputError(UserError):
    """An output folder that cannot be written (read-only, full): one line naming it."""


@contextlib.contextmanager
def output_errors(folder: str | os.PathLike) -> Iterator[None]:
    """Report an OSError raised while writing into `folder` (outputs, their temps) as an
    OutputError naming the folder and the OS error. Wrap only writing: an OSError there
    is the disk's or the folder's, not a bug."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write output there ({exc.strerror or exc})") from None


def check_output_folder(folder: str | os.PathLike) -> None:
    """Create `folder` if needed and make sure a file can be created in it, before any
    work (a read-only folder costs seconds, not the whole run)."""
    with output_errors(folder):
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass


def remove_stale_output_temps(output: str | os.PathLike) -> int:
    """Delete the temps a killed run left beside `output` (`.NAME.tmp-*`, utils.atomic's
    names for this output only, so other files and other outputs' temps are safe)."""
    out = Path(output)
    removed = 0
    for p in out.parent.glob(f".{glob.escape(out.name)}.tmp-*"):
        if is_temp_name(p.name) and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed += 1
    return removed


# ----------------------------------------------------------------------------- reading

def iter_lines(input_files: Sequence[str]) -> Iterator[str]:
    """Every line of every file, `strip()`-ed; lines end at b"\\n" only (as Google's
    readline(): a lone \\r stays inside its line).

    DEVIATION: Google decodes bytes with errors ignored; we refuse invalid UTF-8 instead
    (naming the file and byte offset), because silently dropping bytes of a clinical
    note changes the data without anyone noticing.
    """
    for path in input_files:
        offset = 0
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):  # FAITHFUL: lines end at b"\n" only, then strip()
                try:  # DEVIATION: invalid UTF-8 refused (Google dropped the bad bytes silently)
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise InputError(f"{path}: line {lineno}: invalid UTF-8 at byte offset "
                                     f"{offset + e.start}") from None
                offset += len(raw)
                yield line.strip()


def iter_segments(input_files: Sequence[str], tokenize: Callable[[str], list]) -> Iterator[list | None]:
    """None for each empty line (a document boundary), else the tokens of the line.

    A line whose tokenization is empty yields nothing: it neither adds a segment nor
    starts a document (as in Google's reader). Documents continue across files.
    """
    for line in iter_lines(input_files):
        if not line:  # FAITHFUL: only an empty line ends a document (documents span files)
            yield None
            continue
        tokens = tokenize(line)
        if tokens:  # FAITHFUL: a line without tokens neither adds a segment nor starts a document
            yield tokens


class FlatDocuments:
    """The document store of the fast path: every token id of the input in one flat
    array (uint16 "H" when the vocab allows, else int32 "i": 2 bytes per token instead
    of a Python list's ~36). Segment j is tokens[seg_start[j]:seg_start[j+1]]; document d
    is segments doc_start[d]..doc_start[d+1] (empty documents are dropped)."""

    def __init__(self, typecode: str = "i") -> None:
        self.tokens = array(typecode)
        self.seg_start = array("q", [0])
        self.doc_start = array("q", [0])

    @property
    def num_documents(self) -> int:
        return len(self.doc_start) - 1

    @property
    def num_segments(self) -> int:
        return len(self.seg_start) - 1

    def end_document(self) -> None:
        if self.doc_start[-1] != self.num_segments:  # drop empty documents
            self.doc_start.append(self.num_segments)


def read_flat_documents(input_files: Sequence[str], tokenizer: tokenization.FullTokenizer,
                        progress: Progress | None = None) -> FlatDocuments:
    """Read and tokenize the input into a FlatDocuments store (same rules as read_documents)."""
    typecode = tokenizer.id_typecode()
    docs = FlatDocuments(typecode)
    tokenize = functools.partial(tokenizer.tokenize_to_id_bytes, typecode=typecode)
    for seg in iter_segments(input_files, tokenize):
        if seg is None:
            docs.end_document()
        else:
            docs.tokens.frombytes(seg)
            docs.seg_start.append(len(docs.tokens))
            if progress:
                progress.update(1)
    docs.end_document()
    return docs


def read_documents(input_files: Sequence[str], tokenizer) -> list[list[list[str]]]:
    """Google's reading: list of documents, each a list of token-string segments."""
    all_documents: list[list[list[str]]] = [[]]
    for seg in iter_segments(input_files, tokenizer.tokenize):
        if seg is None:
            all_documents.append([])
        else:
            all_documents[-1].append(seg)
    return [x for x in all_documents if x]


# ----------------------------------------------------------------------- vocab, settings

def check_settings(max_seq_length: int, max_predictions_per_seq: int, dupe_factor: int,
                   masked_lm_prob: float, short_seq_prob: float) -> None:
    """Refuse settings Google's code would crash on or silently misuse (one line each)."""
    if not 5 <= max_seq_length <= 65536:
        # 5 = [CLS] A [SEP] B [SEP] with randint(2, max_seq_length - 3) well defined.
        raise InputError(f"--max_seq_length={max_seq_length}: must be between 5 and 65536")
    if not 1 <= max_predictions_per_seq <= max_seq_length:
        raise InputError(f"--max_predictions_per_seq={max_predictions_per_seq}: must be "
                         f"between 1 and max_seq_length ({max_seq_length})")
    if not 0.0 < masked_lm_prob <= 1.0:
        raise InputError(f"--masked_lm_prob={masked_lm_prob}: must be in (0, 1]")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise InputError(f"--short_seq_prob={short_seq_prob}: must be in [0, 1]")
    if dupe_factor < 1:
        raise InputError(f"--dupe_factor={dupe_factor}: must be at least 1")


def load_tokenizer(vocab_file: str, do_lower_case: bool) -> tokenization.FullTokenizer:
    """FullTokenizer, refusing a vocab that is missing, unreadable, not UTF-8 or lacks
    one of [CLS] [SEP] [MASK] [UNK]."""
    if not os.path.isfile(vocab_file):
        raise InputError(f"{vocab_file}: vocab file not found")
    try:
        with open(vocab_file, "rb") as f:
            data = f.read()
        data.decode("utf-8")
        tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"{vocab_file}: line {line}: invalid UTF-8 at byte offset {e.start}") from None
    except OSError as e:
        raise InputError(f"{vocab_file}: cannot read vocab ({e.strerror})") from None
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.vocab]
    if missing:
        raise InputError(f"{vocab_file}: vocab lacks {' '.join(missing)}")
    return tokenizer


