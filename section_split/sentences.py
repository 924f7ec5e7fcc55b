"""Sentences of a note's sections, written as the original clinicalBERT recipe wrote them.

The original ran scispaCy `en_core_sci_md` (parser-based
sentence boundaries, tagger and NER disabled) once per section, with a component before
the parser forcing some sentence starts, then merged each `[**...**]` de-identification
placeholder into one token. Two pipelines are offered:

  * `build_pipeline("en_core_sci_md")` (a package name or a path): the faithful pipeline.
    The model comes from the scispaCy release site, not from the package index.
  * `build_pipeline(None)`: the model-free default, built only from what the scispaCy
    package ships: its clinical tokenizer rules (`combined_rule_tokenizer`) and its
    pysbd-based sentence splitter (`scispacy.custom_sentence_segmenter`), plus the same
    forced starts and placeholder merge. Its sentences differ from the parser's; the
    CLI says so in its log and manifest.

Output rules (`note_text`): each sentence's text with `\\n` replaced by a space, no strip,
empty sentences skipped, whitespace-only ones kept, each followed by `\\n`, then one more
`\\n` after the note; a note without sentences writes nothing.
"""
from __future__ import annotations

import bisect
import re
import warnings
from typing import Any, Iterable, Iterator

import numpy as np
import spacy
from scispacy.consts import ABBREVIATIONS
from scispacy.custom_tokenizer import combined_rule_tokenizer
from spacy.attrs import IS_SPACE, IS_TITLE, ORTH, SENT_START
from spacy.language import Language
from spacy.strings import hash_string
from spacy.tokens import Doc

from section_split.linear_pysbd import LinearSegmenter
from utils.cli import UserError

__all__ = ["SpacyModelError", "build_pipeline", "note_text", "MODEL_FREE_SPLITTER"]

MODEL_FREE_SPLITTER = ("model-free: scispaCy combined_rule_tokenizer + scispaCy pysbd "
                       "sentencizer rules + original forced starts + [**...**] merge "
                       "(NOT the original en_core_sci_md parser)")
# Far above any note; spaCy's 1,000,000-character default guards parser memory only,
# and a big note is processed whole, never truncated.
_MAX_LENGTH = 2_000_000_000
# FAITHFUL: the original's greedy placeholder pattern (can span several placeholders);
# kept as the definition placeholder_spans reproduces in linear time (tests compare).
_DEID = re.compile(r"\[\*\*.{0,15}.*?\*\*\]", re.IGNORECASE)
_ABBREVIATION_IDS = np.array(sorted({hash_string(a) for a in ABBREVIATIONS}), dtype=np.uint64)
_DOT, _DASH = hash_string("."), hash_string("-")
_TEXT_KEY = "section_split.text"


class SpacyModelError(UserError):
    """The requested spaCy model cannot be loaded; the message says what to do."""


class _TextKeepingTokenizer:
    """The pipeline's tokenizer, also keeping the input string on the doc: spaCy
    rebuilds `doc.text` token by token on every access (a tenth of the run time when
    the components asked for it). No component here changes the text."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> Doc:
        doc = self.tokenizer(text)
        doc.user_data[_TEXT_KEY] = text
        return doc


def _text(doc: Doc) -> str:
    text = doc.user_data.get(_TEXT_KEY)
    return doc.text if text is None else text


def _set_sent_starts(doc: Doc, flags: np.ndarray) -> None:
    """Write all sentence-start flags (1 start, -1 not, 0 unset) in one call. Setting
    `token.is_sent_start` one token at a time re-scans the whole doc per token in
    spaCy 3 (its parse check), which is quadratic on a long section."""
    doc.from_array([SENT_START], flags.astype(np.uint64).reshape(-1, 1))


@Language.component("clinical_forced_sentence_starts", assigns=["token.is_sent_start"])
def forced_sentence_starts(doc: Doc) -> Doc:
    """The original's `sbd_component`: a sentence starts after a token that is exactly
    `.` when the next token is title-case (`str.istitle`), and after a token that is
    exactly `-` when the next is not `-`. Like the original it looks at every token but
    the last two, and only ever sets starts (never clears one)."""
    if len(doc) < 3:
        return doc
    # FAITHFUL: the original's loop bound: token i in 0..n-3, the last two never looked at
    orth = doc.to_array(ORTH)
    nxt = orth[1:-1]
    cur = orth[:-2]
    forced = ((cur == _DOT) & (doc.to_array(IS_TITLE)[1:-1] == 1)) | ((cur == _DASH) & (nxt != _DASH))
    if forced.any():
        flags = doc.to_array(SENT_START).astype(np.int64)
        flags[1:-1][forced] = 1
        _set_sent_starts(doc, flags)
    return doc


def placeholder_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each match of the original's pattern `_DEID`, as `finditer` gives
    them, in time linear in the text (up to a log factor).

    The regex itself retries `.*?` to the end of the line from every `[**` without a
    closing `**]` on its line, which is quadratic (100 KB of such a line: 75 s). Its
    matches are: from a `[**` at p, with k = min(15, characters left on the line after
    the `[**`), the first `**]` of the line at or after p + 3 + k (greedy `.{0,15}`,
    then lazy `.*?`); failing that, the last `**]` starting inside those k characters
    (the greedy part backtracking); failing that, no match at p. The next search starts
    after the match.
    """
    closes = []
    at = text.find("**]")
    while at >= 0:
        closes.append(at)
        at = text.find("**]", at + 3)     # "**]" cannot overlap itself
    pos, line_end = 0, -1
    while (p := text.find("[**", pos)) >= 0:
        if p > line_end:                   # each line's end is looked up once
            line_end = text.find("\n", p)
            line_end = len(text) if line_end < 0 else line_end
        first = p + 3 + max(0, min(15, line_end - p - 3))
        i = bisect.bisect_left(closes, first)
        if i < len(closes) and closes[i] + 3 <= line_end:
            end = closes[i] + 3
        else:
            end = closes[i - 1] + 3 if i > 0 and closes[i - 1] >= p + 3 else -1
        if end < 0:
            pos = p + 1
            continue
        yield p, end
        pos = end


@Language.component("deid_placeholder_merge", retokenizes=True)
def merge_placeholders(doc: Doc) -> Doc:
    """Merge each `[**...**]` placeholder into one token, so no sentence boundary falls
    inside it (the merged token keeps the first token's start flag; inner ones vanish).

    Runs after sentence segmentation, like the original's merge after parsing. The
    original's spaCy 2 `Doc.merge(start_idx, end_idx)` silently skipped spans not on
    token boundaries; here they are expanded to whole tokens (and overlapping ones
    joined) so the no-boundary-inside guarantee holds for every placeholder.

    Faithfully odd: in the original pattern the greedy `.{0,15}` swallows the closing
    `**]` of a placeholder shorter than 16 characters (e.g. `[**2151-7-16**]`), so the
    match runs on to the next `**]` on the same line and that whole stretch, words and
    sentence ends included, becomes one token (one sentence cannot end inside it).
    """
    text = _text(doc)
    if "[**" not in text:
        return doc
    spans: list[tuple[int, int]] = []
    for start, end in placeholder_spans(text):
        span = doc.char_span(start, end, alignment_mode="expand")
        if span is None or len(span) == 0:
            continue
        if spans and span.start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], span.end))
        else:
            spans.append((span.start, span.end))
    with doc.retokenize() as retokenizer:
        for start, end in spans:
            if end - start > 1:
                retokenizer.merge(doc[start:end])
    return doc


class PysbdSentencizer:
    """scispaCy's `pysbd_sentencizer` (scispacy/custom_sentence_segmenter.py, 0.6.2),
    same rules, made fast: one reused segmenter whose time is linear in the text
    (section_split.linear_pysbd), array operations instead of a per-token loop (the
    original also scans a list per token). Tested equal to scispaCy's on the public
    notes, and to pysbd on random long texts.

    Rules: a token starts a sentence where pysbd starts one, unless the previous token
    is a scispaCy abbreviation or is the first token and all newlines; a token after a
    token holding 2+ newlines (not the first token) starts one; no other token does.

    The segmenter keeps the text it works on, so a component (like the pipeline it
    belongs to) serves one thread at a time: section_split.worker builds a pipeline per
    thread.
    """

    def __init__(self) -> None:
        self.segmenter = LinearSegmenter()

    def __call__(self, doc: Doc) -> Doc:
        if len(doc) == 0:
            return doc
        flags = np.where(self._pysbd_starts(doc), ~self._blocked_starts(doc), self._after_newlines(doc))
        _set_sent_starts(doc, np.where(flags, 1, -1))
        return doc

    def _pysbd_starts(self, doc: Doc) -> np.ndarray:
        """Per token: pysbd starts a sentence at it."""
        is_start = np.zeros(len(doc), dtype=bool)
        for sent in self.segmenter.segment(_text(doc)):
            # trailing spaces are cut off so the span ends on a token boundary (as scispaCy)
            span = doc.char_span(sent.start, sent.end - (len(sent.sent) - len(sent.sent.rstrip(" "))))
            if span is not None and len(span) > 0:
                is_start[span.start] = True    # scispaCy: token.idx in [span[0].idx, ...]
        return is_start

    @staticmethod
    def _blocked_starts(doc: Doc) -> np.ndarray:
        """Per token: the previous token blocks a pysbd start (an abbreviation, or a
        first token of newlines)."""
        n = len(doc)
        blocked = np.zeros(n, dtype=bool)
        prev = doc.to_array(ORTH)[:-1]
        found = np.searchsorted(_ABBREVIATION_IDS, prev).clip(max=len(_ABBREVIATION_IDS) - 1)
        blocked[1:] = _ABBREVIATION_IDS[found] == prev
        if n > 1 and all(c == "\n" for c in doc[0].text):
            blocked[1] = True
        return blocked

    @staticmethod
    def _after_newlines(doc: Doc) -> np.ndarray:
        """Per token: the previous token (not the first) holds 2+ newlines; only
        whitespace tokens can."""
        after_newlines = np.zeros(len(doc), dtype=bool)
        for i in np.flatnonzero(doc.to_array(IS_SPACE)[1:-1]) + 1:
            after_newlines[i + 1] = doc[int(i)].text.count("\n") >= 2
        return after_newlines


@Language.factory("clinical_pysbd_sentencizer", assigns=["token.is_sent_start", "doc.sents"])
def pysbd_sentencizer(nlp: Language, name: str) -> PysbdSentencizer:
    """What `nlp.add_pipe("clinical_pysbd_sentencizer")` adds: a PysbdSentencizer of
    that pipeline's own (its segmenter is not shared with any other pipeline)."""
    return PysbdSentencizer()


def build_pipeline(spacy_model: str | None = None) -> tuple[Language, str]:
    """Return (nlp, description of the splitter) for the faithful model or the default.

    Order with a model: tokenizer -> forced starts -> parser -> placeholder merge (as
    the original). Model-free: tokenizer -> pysbd sentencizer -> forced starts ->
    placeholder merge; the forced starts come AFTER pysbd here because scispaCy's
    sentencizer sets the start flag of every token and would erase them otherwise.
    """
    # DEVIATION: spaCy 3 (not 2), and model-free without en_core_sci_md (not on the index)
    if spacy_model:
        try:
            nlp = spacy.load(spacy_model, exclude=["tagger", "attribute_ruler", "lemmatizer", "ner"])
        except OSError as exc:
            raise SpacyModelError(
                f"spaCy model {spacy_model!r} not found ({str(exc).splitlines()[0][:200]}); install "
                "en_core_sci_md from the scispaCy releases (https://allenai.github.io/scispacy/) "
                "or pass the path of an unpacked model, or leave --spacy_model out for the "
                "model-free splitter") from None
        if "parser" not in nlp.pipe_names:
            raise SpacyModelError(f"spaCy model {spacy_model!r} has no parser; "
                                  f"pipes: {', '.join(nlp.pipe_names) or '(none)'}")
        nlp.add_pipe("clinical_forced_sentence_starts", before="parser")
        nlp.add_pipe("deid_placeholder_merge", after="parser")
        meta = nlp.meta
        description = (f"{meta.get('lang', '?')}_{meta.get('name', '?')} {meta.get('version', '?')} "
                       f"parser (tagger, NER excluded) + original forced starts + [**...**] merge")
    else:
        nlp = spacy.blank("en")
        with warnings.catch_warnings():  # scispaCy's own prefix regex: "Possible set union"
            warnings.simplefilter("ignore", FutureWarning)
            nlp.tokenizer = combined_rule_tokenizer(nlp)
        nlp.add_pipe("clinical_pysbd_sentencizer")
        nlp.add_pipe("clinical_forced_sentence_starts")
        nlp.add_pipe("deid_placeholder_merge")
        description = MODEL_FREE_SPLITTER
    nlp.tokenizer = _TextKeepingTokenizer(nlp.tokenizer)
    nlp.max_length = _MAX_LENGTH
    return nlp, description


def note_text(docs: Iterable[Doc]) -> tuple[str, int, int]:
    """(text to write, sentences, words) for one note from its processed sections.

    As the original: `\\n` inside a sentence becomes a space, nothing else is changed; empty
    sentences are skipped (the original's extra `strip() != "\\n"` test is always true),
    whitespace-only ones are kept. Words are whitespace-separated words written.
    """
    lines = []
    words = 0
    for doc in docs:
        for sent in doc.sents:
            text = sent.text
            if text:  # FAITHFUL: no strip; whitespace-only sentences kept (a BERT document break)
                lines.append(text.replace("\n", " "))
                words += len(text.split())
    if not lines:
        return "", 0, 0
    return "\n".join(lines) + "\n\n", len(lines), words
