"""bert.tokenization against hand-derived token lists (real BERT vocabularies), an
independent re-statement of Google's tokenizer rules (`spec_tokenize` below) on hostile
Unicode, and its fast id path."""
from __future__ import annotations

import random
import unicodedata

import pytest

from bert import tokenization as T


@pytest.fixture(scope="module")
def cased(cased_vocab):
    return T.FullTokenizer(str(cased_vocab), do_lower_case=False)


@pytest.fixture(scope="module")
def uncased(uncased_vocab):
    return T.FullTokenizer(str(uncased_vocab), do_lower_case=True)


# (text, cased tokens, uncased tokens) — derived by hand from Google's BasicTokenizer and
# WordpieceTokenizer rules and checked against the vocab files (e.g. "##́" is in the cased vocab, "Ⅻ" in neither).
CASES = [
    ("Pt is a 83 yo F w/ h/o CHF.",
     ["P", "##t", "is", "a", "83", "yo", "F", "w", "/", "h", "/", "o", "CH", "##F", "."],
     ["pt", "is", "a", "83", "yo", "f", "w", "/", "h", "/", "o", "ch", "##f", "."]),
    # lower-casing strips accents (NFD + drop Mn); cased keeps them
    ("HéLLo naïve Café", ["H", "##é", "##LL", "##o", "na", "##ï", "##ve", "Café"],
     ["hello", "naive", "cafe"]),
    # CJK ideographs become single tokens even without spaces
    ("中文abc", ["中", "文", "a", "##b", "##c"], ["中", "文", "abc"]),
    # Zs spaces (ideographic, no-break) split
    ("a\u3000b a\u00a0b", ["a", "b", "a", "b"], ["a", "b", "a", "b"]),
    # Cf (zero width space, soft hyphen) are deleted, joining the word
    ("a\u200bb a\u00adb", ["a", "##b", "a", "##b"], ["ab", "ab"]),
    # NUL and U+FFFD deleted; vertical tab is Cc (not whitespace) so it is deleted too
    ("a\x00b\ufffdc", ["a", "##b", "##c"], ["abc"]),
    ("a\x0bb", ["a", "##b"], ["ab"]),
    # a combining mark stays in the cased word, is dropped when lower-casing
    ("e\u0301", ["e", "##\u0301"], ["e"]),
    # "İ".lower() is "i" + U+0307 (Mn), dropped
    ("İstanbul", ["İ", "##stan", "##bul"], ["istanbul"]),
    # ASCII $ ^ are punctuation (not Unicode P*); ¿ is Po; € (Sc) is not punctuation
    ("$5^2 ¿Qué? 5€", ["$", "5", "^", "2", "¿", "Q", "##ué", "?", "5", "##€"],
     ["$", "5", "^", "2", "¿", "que", "?", "5", "##€"]),
    ("unaffable", ["un", "##af", "##fa", "##ble"], ["una", "##ffa", "##ble"]),
    # NFD does not decompose the ﬁ ligature (NFKD would)
    ("ﬁne", ["ﬁ", "##ne"], ["ﬁ", "##ne"]),
    # Hangul is not CJK here; NFD splits it into jamo only when lower-casing
    ("한국어", ["[UNK]"], ["ᄒ", "##ᅡ", "##ᆫ", "##ᄀ", "##ᅮ", "##ᆨ", "##ᄋ", "##ᅥ"]),
    ("Ⅻ x²", ["[UNK]", "x", "##²"], ["[UNK]", "x", "##²"]),
    ("", [], []),
    (" \t\r\n ", [], []),
]


@pytest.mark.parametrize("text,want_cased,want_uncased", CASES)
def test_hand_derived_tokens(cased, uncased, text, want_cased, want_uncased):
    assert cased.tokenize(text) == want_cased
    assert uncased.tokenize(text) == want_uncased
    # the fast id path agrees (cache + regex route)
    assert cased.tokenize_to_ids(text) == cased.convert_tokens_to_ids(want_cased)
    assert uncased.tokenize_to_ids(text) == uncased.convert_tokens_to_ids(want_uncased)


def test_word_length_limit_is_200(cased):
    assert cased.tokenize("a" * 201) == ["[UNK]"]
    pieces = cased.tokenize("a" * 200)
    assert "[UNK]" not in pieces and "".join(p.lstrip("#") for p in pieces) == "a" * 200
    assert cased.tokenize("x " + "a" * 201 + " y") == ["x", "[UNK]", "y"]


def test_bytes_input_decoded_ignoring_errors(uncased):
    assert uncased.tokenize(b"caf\xc3\xa9 \xff ok") == ["cafe", "ok"]
    assert T.convert_to_unicode(b"a\xffb") == "ab" and T.printable_text("x") == "x"
    with pytest.raises(ValueError):
        T.convert_to_unicode(3)


def test_vocab_duplicates_last_id_wins(tmp_path):
    v = tmp_path / "vocab.txt"
    v.write_bytes("[PAD]\n[UNK]\nab\n##c\nab \n x\r\n##c\n".encode())
    vocab = T.load_vocab(str(v))
    assert vocab["ab"] == 4 and vocab["##c"] == 6 and vocab["x"] == 5
    assert list(vocab.keys()) == ["[PAD]", "[UNK]", "ab", "##c", "x"]
    tok = T.FullTokenizer(str(v), do_lower_case=False)
    assert tok.tokenize("abc x abd") == ["ab", "##c", "x", "[UNK]"]
    assert tok.convert_tokens_to_ids(["ab", "##c"]) == [4, 6]
    assert tok.convert_ids_to_tokens([4, 6]) == ["ab", "##c"]
    with pytest.raises(KeyError):  # like Google: inv_vocab only has the winning ids
        tok.convert_ids_to_tokens([2])
    assert T.whitespace_tokenize("  a \t b\n") == ["a", "b"]


def test_wordpiece_and_basic_directly():
    vocab = {"[UNK]": 0, "want": 1, "##want": 2, "##ed": 3, "wa": 4, "un": 5, "runn": 6, "##ing": 7}
    wp = T.WordpieceTokenizer(vocab)
    assert wp.max_input_chars_per_word == 200
    assert wp.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert wp.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
    assert T.BasicTokenizer(do_lower_case=True).tokenize(" \tHeLLo!how  \n Are yoU?  ") == \
        ["hello", "!", "how", "are", "you", "?"]
    assert T.BasicTokenizer(do_lower_case=False).tokenize(" \tHeLLo!how  \n Are yoU?  ") == \
        ["HeLLo", "!", "how", "Are", "yoU", "?"]


def test_validate_case_matches_checkpoint():
    T.validate_case_matches_checkpoint(True, "x/uncased_L-12_H-768_A-12/bert_model.ckpt")
    T.validate_case_matches_checkpoint(False, None)
    with pytest.raises(ValueError, match="do_lower_case=False"):
        T.validate_case_matches_checkpoint(False, "x/uncased_L-12_H-768_A-12/bert_model.ckpt")
    with pytest.raises(ValueError, match="do_lower_case=True"):
        T.validate_case_matches_checkpoint(True, "x/cased_L-12_H-768_A-12/bert_model.ckpt")


# ------------------------------------- independent tokenizer from Google's rules, restated

def spec_tokenize(text: str, vocab: dict, lower: bool) -> list[str]:
    """Google's tokenization rules (tokenization.py, Python 3 branch) written out plainly,
    independently of bert.tokenization: clean, CJK spacing, whitespace split, lower-case
    and strip accents when uncased, punctuation split, WordPiece with the 200-char limit."""
    cjk = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
           (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
    s = ""
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\x00\ufffd" or (cat in ("Cc", "Cf") and ch not in "\t\n\r"):
            continue
        if ch in " \t\n\r" or cat == "Zs":
            ch = " "
        if any(a <= ord(ch) <= b for a, b in cjk):
            ch = f" {ch} "
        s += ch
    pieces = []
    for word in s.split():
        if lower:
            word = "".join(c for c in unicodedata.normalize("NFD", word.lower())
                           if unicodedata.category(c) != "Mn")
        cur = ""
        for ch in word:
            o = ord(ch)
            if 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126 \
                    or unicodedata.category(ch).startswith("P"):
                pieces += [cur, ch]
                cur = ""
            else:
                cur += ch
        pieces.append(cur)
    out = []
    for word in " ".join(pieces).split():
        if len(word) > 200:
            out.append("[UNK]")
            continue
        sub, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                cand = ("##" if start else "") + word[start:end]
                if cand in vocab:
                    sub.append(cand)
                    start = end
                    break
            else:
                sub = ["[UNK]"]
                break
        out += sub
    return out


# Hostile alphabet: ASCII incl. controls, Latin accents, combining marks, Zs/Cf/Cc,
# CJK blocks (and Hangul/kana next to them), Greek, Cyrillic, Arabic, symbols, astral.
_HOSTILE = ([chr(c) for c in range(0, 128)] + list("éÉèçñüßøÅİıŁ") +
            ["\u0301", "\u0308", "\u0327", "\u20dd", "\u00a0", "\u2003", "\u3000", "\u200b",
             "\u200d", "\u00ad", "\ufeff", "\u2028", "\x85", "\x9f", "\ufffd", "\u4e2d",
             "\u9fff", "\u3400", "\U00020000", "\U0002a700", "\uf900", "\U0002f800", "\uac00",
             "\u3042", "\u30a2", "α", "Ω", "ж", "Я", "ب", "€", "°", "µ", "²", "½", "¿", "«",
             "—", "…", "\u2019", "ﬁ", "Ⅻ", "\U0001f600", "\U0001d400", "\ue000"])


@pytest.mark.parametrize("lower", [False, True])
def test_matches_spec_on_hostile_unicode(cased, uncased, lower):
    tok = uncased if lower else cased
    r = random.Random(7 + lower)
    words = ["the", "patient", "CHF", "naïve", "Straße", "中文", "a" * 70, "b" * 201]
    for _ in range(700):
        parts = [r.choice(_HOSTILE) if r.random() < 0.6 else r.choice(words)
                 for _ in range(r.randint(1, 25))]
        text = "".join(parts)
        want = spec_tokenize(text, tok.vocab, lower)
        assert tok.tokenize(text) == want, repr(text)
        assert tok.tokenize_to_ids(text) == tok.convert_tokens_to_ids(want), repr(text)


@pytest.mark.parametrize("lower", [False, True])
def test_fast_path_equals_exact_path(cased, uncased, golden_cpd, lower):
    """tokenize_to_ids (regex route + word cache) == convert_tokens_to_ids(tokenize) on
    every line of the clinical golden input, the synthetic corpus (data_prep.synthetic_corpus)
    and random ASCII."""
    from data_prep.synthetic_corpus import make_corpus
    tok = uncased if lower else cased
    lines = (golden_cpd / "clin.txt").read_text("utf-8").split("\n")
    lines += make_corpus(150, seed=3).split("\n")
    r = random.Random(11)
    ascii_chars = [chr(c) for c in range(128)]
    lines += ["".join(r.choice(ascii_chars) for _ in range(r.randint(0, 60))) for _ in range(2000)]
    for line in lines:
        assert tok.tokenize_to_ids(line) == tok.convert_tokens_to_ids(tok.tokenize(line)), repr(line)
