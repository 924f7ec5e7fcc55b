"""Sentences of a note's sections, written as the original clinicalBERT recipe wrote them.

Spec clinical_text.md section 3. The original ran scispaCy `en_core_sci_md` (parser-based
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

import re
from typing import Iterable

import pysbd
import spacy
from pysbd.utils import TextSpan
from scispacy.consts import ABBREVIATIONS
from scispacy.custom_tokenizer import combined_rule_tokenizer
from spacy.language import Language
from spacy.tokens import Doc

__all__ = ["SpacyModelError", "build_pipeline", "note_text", "MODEL_FREE_SPLITTER"]

MODEL_FREE_SPLITTER = ("model-free: scispaCy combined_rule_tokenizer + scispaCy pysbd "
                       "sentencizer rules + original forced starts + [**...**] merge "
                       "(NOT the original en_core_sci_md parser)")
# Far above any note; spaCy's 1,000,000-character default guards parser memory only,
# and a big note is processed whole, never truncated.
_MAX_LENGTH = 2_000_000_000
_DEID = re.compile(r"\[\*\*.{0,15}.*?\*\*\]", re.IGNORECASE)  # the original's pattern
_ABBREVIATIONS = frozenset(ABBREVIATIONS)
_WHITESPACE = re.compile(r"\s*")


class SpacyModelError(Exception):
    """The requested spaCy model cannot be loaded; the message says what to do."""


@Language.component("clinical_forced_sentence_starts")
def forced_sentence_starts(doc: Doc) -> Doc:
    """The original's `sbd_component`: a sentence starts after a token that is exactly
    `.` when the next token is title-case, and after a token that is exactly `-` when the
    next is not `-`. Like the original it looks at every token but the last two."""
    for i, token in enumerate(doc[:-2]):
        if token.text == "." and doc[i + 1].is_title:
            doc[i + 1].is_sent_start = True
        if token.text == "-" and doc[i + 1].text != "-":
            doc[i + 1].is_sent_start = True
    return doc


@Language.component("deid_placeholder_merge")
def merge_placeholders(doc: Doc) -> Doc:
    """Merge each `[**...**]` placeholder into one token, so no sentence boundary falls
    inside it (the merged token keeps the first token's start flag; inner ones vanish).

    Runs after sentence segmentation, like the original's merge after parsing. The
    original's spaCy 2 `Doc.merge(start_idx, end_idx)` silently skipped spans not on
    token boundaries; here they are expanded to whole tokens (and overlapping ones
    joined) so the no-boundary-inside guarantee holds for every placeholder.
    """
    if "[**" not in doc.text:
        return doc
    spans: list[tuple[int, int]] = []
    for m in _DEID.finditer(doc.text):
        span = doc.char_span(m.start(), m.end(), alignment_mode="expand")
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


class _Segmenter(pysbd.Segmenter):
    """pysbd's segmenter with its character spans found without regular expressions.

    pysbd locates each sentence with `re.finditer(re.escape(sent) + r"\\s*", text)`,
    compiling one new pattern per sentence, which also evicts pysbd's own cached
    patterns (about half its run time). This finds the same spans: the first match,
    in finditer's non-overlapping order, that ends after the previous sentence.
    """

    def sentences_with_char_spans(self, sentences: list[str]) -> list[TextSpan]:
        text = self.original_text
        spans, prior_end = [], 0
        for sent in sentences:
            if not sent:  # empty pattern: keep pysbd's own search
                spans += super().sentences_with_char_spans([sent])[:1]
                continue
            pos = 0
            while (start := text.find(sent, pos)) >= 0:
                end = _WHITESPACE.match(text, start + len(sent)).end()
                if end > prior_end:
                    spans.append(TextSpan(text[start:end], start, end))
                    prior_end = end
                    break
                pos = end
        return spans


_segmenter: _Segmenter | None = None


@Language.component("clinical_pysbd_sentencizer")
def pysbd_sentencizer(doc: Doc) -> Doc:
    """scispaCy's `pysbd_sentencizer` (scispacy/custom_sentence_segmenter.py, 0.6.2),
    same rules, made fast: one reused segmenter, regex-free spans, set lookups (the
    original scans a list per token). Tested equal to scispaCy's on the public notes.

    Rules: a token starts a sentence where pysbd starts one, unless the previous token
    is a scispaCy abbreviation or is the first token and all newlines; a token after a
    token holding 2+ newlines (not the first token) starts one; no other token does.
    """
    global _segmenter
    if _segmenter is None:
        _segmenter = _Segmenter(language="en", clean=False, char_span=True)
    starts = set()
    for sent in _segmenter.segment(doc.text):
        # trailing spaces are cut off so the span ends on a token boundary (as scispaCy)
        span = doc.char_span(sent.start, sent.end - (len(sent.sent) - len(sent.sent.rstrip(" "))))
        if span is not None and len(span) > 0:
            starts.add(span[0].idx)
    prev = None
    for token in doc:
        if token.idx in starts:
            token.is_sent_start = not (prev is not None and (
                prev.text in _ABBREVIATIONS or (prev.i == 0 and all(c == "\n" for c in prev.text))))
        else:
            token.is_sent_start = prev is not None and prev.i != 0 and prev.text.count("\n") >= 2
        prev = token
    return doc


def build_pipeline(spacy_model: str | None = None) -> tuple[Language, str]:
    """Return (nlp, description of the splitter) for the faithful model or the default.

    Order with a model: tokenizer -> forced starts -> parser -> placeholder merge (as
    the original). Model-free: tokenizer -> pysbd sentencizer -> forced starts ->
    placeholder merge; the forced starts come AFTER pysbd here because scispaCy's
    sentencizer sets the start flag of every token and would erase them otherwise.
    """
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
        nlp.tokenizer = combined_rule_tokenizer(nlp)
        nlp.add_pipe("clinical_pysbd_sentencizer")
        nlp.add_pipe("clinical_forced_sentence_starts")
        nlp.add_pipe("deid_placeholder_merge")
        description = MODEL_FREE_SPLITTER
    nlp.max_length = _MAX_LENGTH
    return nlp, description


def note_text(docs: Iterable[Doc]) -> tuple[str, int, int]:
    """(text to write, sentences, words) for one note from its processed sections.

    Spec 3: `\\n` inside a sentence becomes a space, nothing else is changed; empty
    sentences are skipped (the original's extra `strip() != "\\n"` test is always true),
    whitespace-only ones are kept. Words are whitespace-separated words written.
    """
    lines = []
    words = 0
    for doc in docs:
        for sent in doc.sents:
            text = sent.text
            if text:
                lines.append(text.replace("\n", " "))
                words += len(text.split())
    if not lines:
        return "", 0, 0
    return "\n".join(lines) + "\n\n", len(lines), words
