"""WordPiece tokenization, output-identical to Google BERT's `tokenization.py`.

The classes and functions below keep
Google's names and behaviour (Python 3 branch). On top of them, `FullTokenizer` has a
fast path for the common case (see `FullTokenizer.tokenize_to_id_bytes`): a line made only of
printable ASCII (plus tab) is split with one regular expression, which for that alphabet
is provably the same as the basic tokenizer, and every word's WordPiece ids are cached.
Any other line takes the exact, character-by-character path.
"""
from __future__ import annotations

import collections
import re
import unicodedata
from array import array
from typing import Iterable, Sequence


def validate_case_matches_checkpoint(do_lower_case: bool, init_checkpoint: str | None) -> None:
    """Checks whether the casing config is consistent with the checkpoint name."""
    # Same heuristic as Google's: the name of the original checkpoints tells their casing.
    if not init_checkpoint:
        return
    m = re.match("^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", init_checkpoint)
    if m is None:
        return
    model_name = m.group(1)
    lower_models = ["uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
                    "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12"]
    cased_models = ["cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16",
                    "multi_cased_L-12_H-768_A-12"]
    is_bad_config = False
    if model_name in lower_models and not do_lower_case:
        is_bad_config, actual_flag, case_name, opposite_flag = True, "False", "lowercased", "True"
    if model_name in cased_models and do_lower_case:
        is_bad_config, actual_flag, case_name, opposite_flag = True, "True", "cased", "False"
    if is_bad_config:
        raise ValueError(
            "You passed in `--do_lower_case=%s` with `--init_checkpoint=%s`. "
            "However, `%s` seems to be a %s model, so you should pass in `--do_lower_case=%s` "
            "so that the fine-tuning matches how the model was pre-training. If this error "
            "is wrong, please just comment out this check." % (
                actual_flag, init_checkpoint, model_name, case_name, opposite_flag))


def convert_to_unicode(text: str | bytes) -> str:
    """`str` as is; `bytes` decoded as UTF-8 ignoring errors (Google's Python 3 branch,
    the first step of BasicTokenizer.tokenize)."""
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        # FAITHFUL: bytes decoded ignoring errors (input files: DEVIATION in pretraining_io)
        return text.decode("utf-8", "ignore")
    raise ValueError("Unsupported string type: %s" % (type(text)))


def printable_text(text: str | bytes) -> str:
    """Text suitable for print or logging (same as `convert_to_unicode` on Python 3)."""
    return convert_to_unicode(text)


def load_vocab(vocab_file: str) -> "collections.OrderedDict[str, int]":
    """token -> id (0-based line number of the `strip()`-ed line); a repeated token keeps
    its LAST id, as Google's OrderedDict did. Its key order stays that of FIRST occurrence,
    which is the list random replacement draws from (`vocab_words` in
    bert.pretraining_reference and bert.create_pretraining_data)."""
    vocab: collections.OrderedDict[str, int] = collections.OrderedDict()
    with open(vocab_file, "r", encoding="utf-8", newline="\n") as reader:
        # Google reads with readline(): lines end at "\n" only, never at a lone "\r".
        for index, line in enumerate(reader):
            vocab[line.strip()] = index  # FAITHFUL: last id wins, keys keep first-occurrence order
    return vocab


def convert_by_vocab(vocab, items: Iterable):
    """Converts a sequence of tokens or ids using the vocab."""
    return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
    return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
    return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text: str) -> list[str]:
    """Runs basic whitespace cleaning and splitting on a piece of text."""
    text = text.strip()
    if not text:
        return []
    return text.split()


# Printable ASCII plus tab/space: for these characters the basic tokenizer reduces to
# "words are runs of [A-Za-z0-9], each other non-space character is its own token"
# (ASCII punctuation = 33-47, 58-64, 91-96, 123-126 = every printable non-alphanumeric).
_FAST_LINE = re.compile(r"[\t\x20-\x7e]*")
_FAST_TOKENS = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")


class FullTokenizer:
    """Runs end-to-end tokenization."""

    def __init__(self, vocab_file: str, do_lower_case: bool = True) -> None:
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {v: k for k, v in self.vocab.items()}
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
        self.do_lower_case = do_lower_case
        # typecode -> word -> its WordPiece ids as array(typecode) bytes
        self._word_ids: dict[str, dict[str, bytes]] = {}

    def tokenize(self, text: str | bytes) -> list[str]:
        split_tokens = []
        for token in self.basic_tokenizer.tokenize(text):
            for sub_token in self.wordpiece_tokenizer.tokenize(token):
                split_tokens.append(sub_token)
        return split_tokens

    def tokenize_to_ids(self, text: str) -> list[int]:
        """`convert_tokens_to_ids(tokenize(text))`, computed by the fast route below."""
        ids = array("i")
        ids.frombytes(self.tokenize_to_id_bytes(text))
        return ids.tolist()

    def id_typecode(self) -> str:
        """The smallest array typecode that holds every id: "H" (uint16) when the vocab
        has at most 65,536 entries (BERT's ~30k), else "i" (int32)."""
        return "H" if max(self.vocab.values(), default=0) < 1 << 16 else "i"

    def tokenize_to_id_bytes(self, text: str, typecode: str = "i") -> bytes:
        """The ids of `tokenize(text)` as the bytes array(typecode) holds ("i" or "H").

        Fast route: a line of printable ASCII (plus tab) is split by one regex, which for
        that alphabet is exactly the basic tokenizer; each word's WordPiece ids are cached
        (as bytes, so a line is one C-level join). Other lines take the exact path.
        Raises KeyError like Google's code if a produced token (e.g. "[UNK]") is missing
        from the vocab.
        """
        if _FAST_LINE.fullmatch(text):
            words = _FAST_TOKENS.findall(text.lower() if self.do_lower_case else text)
        else:
            words = self.basic_tokenizer.tokenize(text)
        cache = self._word_ids.setdefault(typecode, {})
        try:  # common case: every word seen before
            return b"".join(map(cache.__getitem__, words))
        except KeyError:
            pass
        out = []
        for word in words:
            ids = cache.get(word)
            if ids is None:
                ids = array(typecode, convert_by_vocab(
                    self.vocab, self.wordpiece_tokenizer.tokenize(word))).tobytes()
                if len(cache) < 500_000:  # bound memory (~100 MB) on very diverse inputs
                    cache[word] = ids
            out.append(ids)
        return b"".join(out)

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        return convert_by_vocab(self.vocab, tokens)

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return convert_by_vocab(self.inv_vocab, ids)


class BasicTokenizer:
    """Runs basic tokenization (punctuation splitting, lower casing, etc.)."""

    def __init__(self, do_lower_case: bool = True) -> None:
        self.do_lower_case = do_lower_case

    def tokenize(self, text: str | bytes) -> list[str]:
        """Tokenizes a piece of text, Google's steps in order: decode, clean, space out CJK
        ideographs, split on whitespace, lower-case and strip accents (uncased only),
        split at punctuation, re-split on whitespace."""
        text = convert_to_unicode(text)
        text = self._clean_text(text)
        # Added by Google in Nov 2018 for the multilingual and Chinese models; it also
        # applies to English models (their vocab has few CJK characters anyway).
        text = self._tokenize_chinese_chars(text)
        orig_tokens = whitespace_tokenize(text)
        split_tokens = []
        for token in orig_tokens:
            if self.do_lower_case:  # FAITHFUL: cased skips lower-casing AND accent stripping
                token = token.lower()
                token = self._run_strip_accents(token)
            split_tokens.extend(self._run_split_on_punc(token))
        return whitespace_tokenize(" ".join(split_tokens))

    def _run_strip_accents(self, text: str) -> str:
        """Strips accents (category Mn after NFD) from a piece of text."""
        text = unicodedata.normalize("NFD", text)
        return "".join(c for c in text if unicodedata.category(c) != "Mn")

    def _run_split_on_punc(self, text: str) -> list[str]:
        """Splits punctuation on a piece of text."""
        chars = list(text)
        i = 0
        start_new_word = True
        output: list[list[str]] = []
        while i < len(chars):
            char = chars[i]
            if _is_punctuation(char):
                output.append([char])
                start_new_word = True
            else:
                if start_new_word:
                    output.append([])
                start_new_word = False
                output[-1].append(char)
            i += 1
        return ["".join(x) for x in output]

    def _tokenize_chinese_chars(self, text: str) -> str:
        """Adds whitespace around any CJK character."""
        output = []
        for char in text:
            if self._is_chinese_char(ord(char)):
                output += [" ", char, " "]
            else:
                output.append(char)
        return "".join(output)

    def _is_chinese_char(self, cp: int) -> bool:
        """Whether `cp` is in a CJK Unified Ideographs block (Google's ranges; Hangul and
        kana are not included)."""
        return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF)
                or (0x20000 <= cp <= 0x2A6DF) or (0x2A700 <= cp <= 0x2B73F)
                or (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF)
                or (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))

    def _clean_text(self, text: str) -> str:
        """Removes NUL, U+FFFD and control characters; maps whitespace to " "."""
        output = []
        for char in text:
            cp = ord(char)
            # FAITHFUL: NUL, U+FFFD, Cc/Cf (but \t\n\r) dropped; Zs and \t\n\r become " "
            if cp == 0 or cp == 0xFFFD or _is_control(char):
                continue
            output.append(" " if _is_whitespace(char) else char)
        return "".join(output)


class WordpieceTokenizer:
    """Runs WordPiece tokenization (greedy longest-match-first)."""

    def __init__(self, vocab, unk_token: str = "[UNK]", max_input_chars_per_word: int = 200) -> None:
        self.vocab = vocab
        self.unk_token = unk_token
        # FAITHFUL: Google's default of 200 characters per word (other libraries use 100)
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text: str | bytes) -> list[str]:
        """E.g. "unaffable" -> ["un", "##aff", "##able"]; a word with an unmatched part
        (or over 200 characters) becomes a single unk_token."""
        text = convert_to_unicode(text)
        output_tokens = []
        for token in whitespace_tokenize(text):
            chars = list(token)
            if len(chars) > self.max_input_chars_per_word:
                output_tokens.append(self.unk_token)
                continue
            is_bad = False
            start = 0
            sub_tokens = []
            while start < len(chars):
                end = len(chars)
                cur_substr = None
                while start < end:
                    substr = "".join(chars[start:end])
                    if start > 0:
                        substr = "##" + substr
                    if substr in self.vocab:
                        cur_substr = substr
                        break
                    end -= 1
                if cur_substr is None:
                    is_bad = True
                    break
                sub_tokens.append(cur_substr)
                start = end
            if is_bad:
                output_tokens.append(self.unk_token)
            else:
                output_tokens.extend(sub_tokens)
        return output_tokens


def _is_whitespace(char: str) -> bool:
    """Space, \\t, \\n, \\r or category Zs (\\t, \\n, \\r are Cc but count as whitespace)."""
    if char == " " or char == "\t" or char == "\n" or char == "\r":
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    """Category Cc or Cf, except \\t, \\n, \\r (treated as whitespace)."""
    if char == "\t" or char == "\n" or char == "\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char: str) -> bool:
    """ASCII non-alphanumerics (e.g. "^", "$", "`" are not Unicode P*) or category P*."""
    cp = ord(char)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(char).startswith("P")
