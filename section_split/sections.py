"""Section splitting of one clinical note by the original clinicalBERT rules.

A faithful port of `sent_tokenize_rules` (clinicalBERT `heuristic_tokenize.py`). The
rules chip structure (headers, separators, enumerated lists, "Title: value" lines) off a
note until mostly prose is left; spaCy then finds sentences inside each segment. The
steps, in the order `split_sections` runs them:

1. dash/underscore runs become separator blocks, blank-line runs collapse, the note is
   cut into blocks at blank lines;
2. the one-line `Admission Date: ... Discharge Date: ...` and `Date of Birth: ... Sex:
   ...` headers of the first blocks become four segments each (`_split_headers`);
3. titles (`is_title`) found at line starts split each block (`_split_headers`);
4. the separator markers become segments of their own (`_split_marker`);
5. numbered lists become one segment per item (`_split_enumerations`; known bug 1);
6. a line `Title: value` starts a new segment (`_split_inline_titles`);
7. a one-line answer is glued to the title before it (`_join_one_liners`; known bug 2).

Faithful mode keeps the original's two known bugs (steps 5 and 7) and raises
`SectionSplitError` wherever the original raised (the original caller then dropped the
whole note). `fix_known_bugs=True` fixes exactly those two bugs and nothing else.
"""
from __future__ import annotations

import re

from utils.cli import UserError

__all__ = ["SectionSplitError", "split_sections", "is_title", "is_inline_title"]


class SectionSplitError(UserError, ValueError):
    """The original heuristics raise on this note; the caller drops it (and counts it)."""


_DASHES = re.compile(r"---+")
_UNDERSCORES = re.compile(r"___+")
_BLANK_LINES = re.compile(r"\n\n+")
# `.` does not cross a newline: only the first line of the first block can match (step 2;
# the rest of that block after its first line is lost, as in the original).
_ADMISSION = re.compile(r"(Admission Date:) (.*) (Discharge Date:) (.*)")
_BIRTH = re.compile(r"(Date of Birth:) (.*) (Sex:) (.*)")
_HEADER = re.compile(r"\n([A-Z][^\n:]+:)")
_PARENS = re.compile(r"(\([^\)]*?\))")
_INLINE_TITLE = re.compile(r"^([a-zA-Z ]+:) ")
_ENUM = re.compile(r"\n\s*(\d+)\.")
_STOPWORDS = frozenset(("of", "on", "or"))


def is_title(text: str) -> bool:
    """True for a section title such as `Past Medical History:` (original `is_title`)."""
    if not text.endswith(":"):
        return False
    text = _PARENS.sub("", text[:-1])
    for word in text.split():
        if word not in _STOPWORDS and not word[0].isupper():
            return False
    return text != "Disp"  # FAITHFUL: the original's exception, a common non-title line start


def is_inline_title(line: str) -> bool:
    """True for a line starting with `Letters and spaces: ` whose title part is a title."""
    m = _INLINE_TITLE.search(line)
    return bool(m) and is_title(m.group(1))


def _split_headers(segments: list[str]) -> list[str]:
    """Steps 2-3: the two one-line header blocks, then titles found in each block."""
    out: list[str] = []
    m = _ADMISSION.match(segments[0])
    if m:
        out += [g.strip() for g in m.groups()]
        segments = segments[1:]
    # FAITHFUL: the original indexes segments[0] unconditionally: a note that was only
    # the admission line raised IndexError there, so it is an error (the note is dropped).
    if not segments:
        raise SectionSplitError("note is a single 'Admission Date: ... Discharge Date:' line")
    m = _BIRTH.match(segments[0])
    if m:
        out += [g.strip() for g in m.groups()]
        segments = segments[1:]

    for segment in segments:
        titles = [h.strip() for h in _HEADER.findall("\n" + segment) if is_title(h.strip())]
        for title in titles:
            # FIRST occurrence in what is left, which may precede the line the title
            # was found on. The original's str.index would raise ValueError if it were
            # missing; that seems unreachable (each title lies after the previous one's
            # line) but is mapped to the same error as the original's other raises.
            ind = segment.find(title)
            if ind < 0:
                raise SectionSplitError("section title not found in the rest of its block")
            prefix = segment[:ind].strip()
            if prefix:
                out.append(prefix)
            out.append(title)
            segment = segment[ind + len(title):].strip()
        # Checked before the strip: a whitespace-only block yields "" (as the original).
        if segment:
            out.append(segment.strip())
    return out


def _split_marker(segments: list[str], marker: str) -> list[str]:
    """Step 4: split on `\\n<marker>\\n`, keeping the marker as its own segment."""
    sep = "\n" + marker + "\n"
    out: list[str] = []
    for segment in segments:
        if sep not in segment:
            out.append(segment)
            continue
        pieces = segment.split(sep)
        out.append(pieces[0])
        for piece in pieces[1:]:
            out.append(marker)
            out.append(piece)
    return out


def _split_enumerations(segments: list[str], fix_known_bugs: bool) -> list[str]:
    """Step 5: one segment per item of a numbered list `1. ... 2. ...`."""
    # FAITHFUL: known bug 1: the original's `'\n\s*%d.' % n` leaves the dot unescaped, so e.g.
    # `\n1` followed by any character counts as item 1 and `n` can overshoot.
    item = r"\n\s*%d\." if fix_known_bugs else r"\n\s*%d."
    out: list[str] = []
    for segment in segments:
        if not _ENUM.search("\n" + segment):
            out.append(segment)
            continue
        segment = "\n" + segment  # the list may start the segment
        start = int(_ENUM.search(segment).group(1))
        n = start
        while re.search(item % n, segment):
            n += 1
        n -= 1
        if n < 1:
            out.append(segment)  # kept with the added "\n", as the original did
            continue
        for _ in range(start, n + 1):
            m = _ENUM.search(segment)
            if m is None:
                # The count overshot the real items: the original's
                # `re.search(...).groups()` raised AttributeError (the note is dropped).
                raise SectionSplitError("enumerated list count overshoots its items")
            prefix = segment[:m.start()].strip()
            segment = segment[m.start():].strip()
            if prefix:
                out.append(prefix)
        if segment:
            out.append(segment)
    return out


def _split_inline_titles(segments: list[str]) -> list[str]:
    """Step 6: a line `Title: value` starts a new segment."""
    out: list[str] = []
    for segment in segments:
        lines = segment.split("\n")
        buf: list[str] = []
        for line in lines:
            if buf and is_inline_title(line):
                out.append("\n".join(buf))
                buf = []
            buf.append(line)
        out.append("\n".join(buf))  # `lines` is never empty, so neither is `buf`
    return out


def _join_one_liners(segments: list[str], fix_known_bugs: bool, dropped: list[str] | None = None) -> list[str]:
    """Step 7: glue a one-line answer to its title (`A A' B B'` -> `AA' BB'`).
    Segments that known bug 2 drops are appended to `dropped` when given."""
    out: list[str] = []
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if i > 0 and "\n" not in segment and is_title(segments[i - 1]) and not is_title(segment):
            if i == last or is_title(segments[i + 1]):
                out[-1] = segments[i - 1] + " " + segment
            elif fix_known_bugs:
                out.append(segment)
            elif dropped is not None:
                # FAITHFUL: known bug 2 -- the original drops this segment (e.g. the
                # first item of a list that follows a title); kept aside to be counted.
                dropped.append(segment)
        else:
            out.append(segment)
    return out


def split_sections(text: str, fix_known_bugs: bool = False, dropped: list[str] | None = None) -> list[str]:
    """Split one note into segments (titles, list items, prose paragraphs).

    Faithful by default: same output as the original `sent_tokenize_rules`, including
    its two known bugs, and `SectionSplitError` where the original raised. The
    segments that known bug 2 drops (which --fix_known_bugs keeps) are appended to
    `dropped` when a list is given, so that their cost can be counted.
    """
    text = _DASHES.sub("\n\n-----\n\n", text)
    text = _UNDERSCORES.sub("\n\n_____\n\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    segments = _split_headers(text.split("\n\n"))
    segments = _split_marker(segments, "_____")
    segments = _split_marker(segments, "-----")
    segments = _split_enumerations(segments, fix_known_bugs)
    segments = _split_inline_titles(segments)
    return _join_one_liners(segments, fix_known_bugs, dropped)
