"""pysbd 0.3.4's English segmentation in time linear in the text length, same output.

pysbd (under scispaCy's sentencizer) re-runs a substitution over the WHOLE line for
every occurrence of an abbreviation or list marker it finds in that line, so one line
of n characters with k such occurrences costs O(n * k): quadratic on a long single-line
segment (measured: 15 KB 1.2 s, 62 KB 16 s, a 1.2 MB note not finished in 12 minutes;
the word "is" alone is one of its abbreviations). Here each DISTINCT substitution runs
once per line, in the order of its first use. That gives the same text because every
one of these substitutions only turns a `.` into a placeholder (or marks a list item)
and none can create a new match for any of them (their patterns need a `.` where the
replacement leaves another character); so a repeat finds nothing left to do
(tests/section_split/test_linear_pysbd.py checks this against pysbd on random texts).
The one substitution that matches its own output (a `c)` list letter gains a `\\r`
before it, after which it matches again) is applied once with the `\\r`s its repeats
would have added.

Sentence spans are found as pysbd does (first non-overlapping `re.escape(sentence) +
\\s*` match in the text ending after the previous span), but each distinct sentence
resumes its scan where it stopped, instead of rescanning from the start.
"""
from __future__ import annotations

import re

import pysbd
from pysbd.abbreviation_replacer import replace_pre_number_abbr, replace_prepositive_abbr
from pysbd.lang.english import English
from pysbd.lists_item_replacer import ListItemReplacer
from pysbd.processor import Processor
from pysbd.utils import TextSpan

__all__ = ["LinearSegmenter"]

_WHITESPACE = re.compile(r"\s*")


class _AbbreviationReplacer(English.AbbreviationReplacer):
    """`search_for_abbreviations_in_string` with each distinct replacement run once."""

    def search_for_abbreviations_in_string(self, text: str) -> str:
        lowered = text.lower()
        prepositive = self.lang.Abbreviation.PREPOSITIVE_ABBREVIATIONS
        number_abbr = self.lang.Abbreviation.NUMBER_ABBREVIATIONS
        done: set[str] = set()
        for abbr in self.lang.Abbreviation.ABBREVIATIONS:
            stripped = abbr.strip()
            if stripped not in lowered:
                continue
            abbrev_match = re.findall(r"(?:^|\s|\r|\n){}".format(stripped), text, flags=re.IGNORECASE)
            if not abbrev_match:
                continue
            # FAITHFUL: pysbd's look-behind `(?<={abbr} )` has literal braces, so this
            # list is nearly always empty and every match is replaced.
            char_array = re.findall(r"(?<={" + str(re.escape(stripped)) + "} ).{1}", text)
            for ind, am in enumerate(abbrev_match):
                key = am.strip()
                if key in done:
                    continue           # a repeat: nothing left for it to replace
                char = char_array[ind] if ind < len(char_array) else ""
                lower = key.lower()
                if not str(char).isupper() or lower in prepositive:
                    done.add(key)
                    if lower in prepositive:
                        text = replace_prepositive_abbr(text, am)
                    elif lower in number_abbr:
                        text = replace_pre_number_abbr(text, am)
                    else:
                        text = self.replace_period_of_abbr(text, am)
        return text


class _ListItemReplacer(ListItemReplacer):
    """List markers: each distinct (pattern, item) substitution once; the
    letter-with-parenthesis one, which matches its own output, once with the effect of
    as many calls as pysbd makes."""

    def scan_lists(self, regex1, regex2, replacement, strip=False):  # noqa: D401 (pysbd's signature)
        list_array = list(map(int, re.findall(regex1, self.text)))
        done: set[int] = set()
        for ind, item in enumerate(list_array):
            wanted = ind < len(list_array) - 1 and item + 1 == list_array[ind + 1]
            if not wanted and ind > 0:
                prev = list_array[ind - 1]
                wanted = item - 1 == prev or (item == 0 and prev == 9) or (item == 9 and prev == 0)
            if wanted and item not in done:
                done.add(item)
                self.substitute_found_list_items(regex2, item, strip, replacement)

    def iterate_alphabet_array(self, regex, parens=False, roman_numeral=False):
        list_array = re.findall(regex, self.text)
        alphabet = self.ROMAN_NUMERALS if roman_numeral else self.LATIN_NUMERALS
        list_array = [i for i in list_array if i in alphabet]
        calls: dict[str, int] = {}
        for ind, each in enumerate(list_array):
            if self._alphabet_item_wanted(each, ind, alphabet, list_array):
                calls[each] = calls.get(each, 0) + 1
        for each, count in calls.items():
            if parens:
                self.text = self._replace_alphabet_list_parens_repeated(each, count)
            else:
                self.text = self.replace_alphabet_list(each)
        return self.text

    def _replace_alphabet_list_parens_repeated(self, val: str, times: int) -> str:
        """pysbd's `replace_alphabet_list_parens(val)` applied `times` times, in one pass.

        Each call turns `(val` into `\\r&✂&val` (which no later call matches again) and a
        bare `val` (after whitespace or at the start, before `)`) into `\\rval`, whose new
        `\\r` makes it match again next time: so `times` calls prepend `times` `\\r`.
        """
        def replace(match: re.Match) -> str:
            found = match.group()
            if "(" in found:
                return "\r&✂&" + val if found.strip("(") == val else found
            return "\r" * times + found if found == val else found

        return re.sub(self.EXTRACT_ALPHABETICAL_LIST_LETTERS_REGEX, replace, self.text, flags=re.IGNORECASE)

    def add_line_breaks_for_numbered_list_with_periods(self):
        if "♨" in self.text and not _markers_across_break(self.text, "♨") and \
                not re.search(r"for\s\d{1,2}♨\s[a-z]", self.text):
            self.text = re.sub(self.SpaceBetweenListItemsFirstRule.pattern,
                               self.SpaceBetweenListItemsFirstRule.replacement, self.text)
            self.text = re.sub(self.SpaceBetweenListItemsSecondRule.pattern,
                               self.SpaceBetweenListItemsSecondRule.replacement, self.text)

    def add_line_breaks_for_numbered_list_with_parens(self):
        if "☝" in self.text and not _markers_across_break(self.text, "☝"):
            self.text = re.sub(self.SpaceBetweenListItemsThirdRule.pattern,
                               self.SpaceBetweenListItemsThirdRule.replacement, self.text)

    @staticmethod
    def _alphabet_item_wanted(a: str, i: int, alphabet: list[str], list_array: list[str]) -> bool:
        """pysbd's last_array_item_replacement / other_items_replacement conditions."""
        if list_array[i - 1] not in alphabet or a not in alphabet:
            return False
        if i == len(list_array) - 1:
            return abs(alphabet.index(list_array[i - 1]) - alphabet.index(a)) == 1
        if list_array[i + 1] not in alphabet:
            return False
        return not (alphabet.index(list_array[i + 1]) - alphabet.index(a) != 1
                    and abs(alphabet.index(list_array[i - 1]) - alphabet.index(a)) != 1)


def _markers_across_break(text: str, marker: str) -> bool:
    """`re.search(marker + ".+(\\n|\\r).+" + marker, text)` without its backtracking,
    which costs O(n) per marker and up to O(n^2) for one (pysbd's two list checks).

    `.` is any character but `\\n`: a match is a marker, 1+ characters, a `\\r` or
    `\\n`, 1+ characters, a marker, with no `\\n` between a marker and the break.
    """
    lines = text.split("\n")
    for n, line in enumerate(lines):
        first = line.find(marker)
        if first < 0:
            continue
        br = line.find("\r", first + 2)                  # a \r break inside this line
        if br >= 0 and line.find(marker, br + 2) >= 0:
            return True
        if first <= len(line) - 2 and n + 1 < len(lines) and lines[n + 1].find(marker, 1) >= 0:
            return True                                   # the \n that ends this line
    return False


class _Processor(Processor):
    """pysbd's Processor with the two replacers above (`process` is pysbd's, with
    `_ListItemReplacer` in place of `ListItemReplacer`)."""

    def process(self):
        if not self.text:
            return self.text
        self.text = self.text.replace("\n", "\r")
        self.text = _ListItemReplacer(self.text).add_line_break()
        self.replace_abbreviations()
        self.replace_numbers()
        self.replace_continuous_punctuation()
        self.replace_periods_before_numeric_references()
        self.text = self._apply(self.lang.Abbreviation.WithMultiplePeriodsAndEmailRule,
                                self.lang.GeoLocationRule, self.lang.FileFormatRule)
        return self.split_into_segments()

    def _apply(self, *rules) -> str:
        text = self.text
        for rule in rules:
            text = re.sub(rule.pattern, rule.replacement, text)
        return text

    def abbreviations_replacer(self):
        return _AbbreviationReplacer(self.text, self.lang)


class LinearSegmenter(pysbd.Segmenter):
    """pysbd.Segmenter("en", clean=False, char_span=True) with the linear replacers and
    a linear span search (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(language="en", clean=False, char_span=True)

    def processor(self, text):
        return _Processor(text, self.language_module, char_span=self.char_span)

    def sentences_with_char_spans(self, sentences: list[str]) -> list[TextSpan]:
        text = self.original_text
        spans, prior_end = [], 0
        resume: dict[str, int] = {}   # sentence -> where its finditer-order scan goes on
        for sent in sentences:
            if not sent:  # empty pattern: keep pysbd's own search
                spans += super().sentences_with_char_spans([sent])[:1]
                continue
            # Matches before `pos` ended at or before an earlier prior_end, which only
            # grows, so none of them can be the first to end after this one either.
            pos = max(resume.get(sent, 0), _earliest_useful_start(text, sent, prior_end))
            while (start := text.find(sent, pos)) >= 0:
                end = _WHITESPACE.match(text, start + len(sent)).end()
                pos = end
                if end > prior_end:
                    spans.append(TextSpan(text[start:end], start, end))
                    prior_end = end
                    break
            resume[sent] = pos if start >= 0 else len(text) + 1
        return spans


def _earliest_useful_start(text: str, sent: str, prior_end: int) -> int:
    """Where the scan for `sent` can start instead of 0 with the same result.

    pysbd takes the first of the non-overlapping matches `sent\\s*` scanned from the
    text's start that ends after `prior_end`. When `sent` starts with a non-space and
    no proper prefix of it is also a suffix, no two occurrences can overlap or start
    inside a match's trailing whitespace, so every occurrence is such a match and the
    scan may start anywhere before the first one that can end after `prior_end`: one
    that starts at most len(sent) before the whitespace run reaching `prior_end`.
    Otherwise the scan starts at 0, as pysbd's does.
    """
    if sent[0].isspace() or _has_border(sent):
        return 0
    run = prior_end
    while run > 0 and text[run - 1].isspace():
        run -= 1
    return max(0, run - len(sent))


def _has_border(s: str) -> bool:
    """True when a proper prefix of `s` is also its suffix (e.g. "abcab"): only then
    can two occurrences of `s` overlap. Linear (KMP failure function)."""
    fail = [0] * len(s)
    k = 0
    for i in range(1, len(s)):
        while k and s[i] != s[k]:
            k = fail[k - 1]
        if s[i] == s[k]:
            k += 1
        fail[i] = k
    return bool(s) and fail[-1] > 0
