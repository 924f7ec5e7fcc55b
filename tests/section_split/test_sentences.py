"""section_split.sentences: pipeline components and output line rules (the original's,
as section_split/sentences.py's docstring states them)."""
from __future__ import annotations


import pytest
import spacy
from scispacy.custom_tokenizer import combined_rule_tokenizer
from spacy.language import Language
from spacy.tokens import Doc

import scispacy.custom_sentence_segmenter  # noqa: F401  registers scispaCy's "pysbd_sentencizer"
from section_split.linear_pysbd import LinearSegmenter
from section_split.sentences import SpacyModelError, build_pipeline, note_text


@pytest.fixture(scope="module")
def nlp():
    return build_pipeline(None)[0]


def _blank(*pipes):
    nlp = spacy.blank("en")
    nlp.tokenizer = combined_rule_tokenizer(nlp)
    for pipe in pipes:
        nlp.add_pipe(pipe)
    return nlp


def _sents(doc):
    return [s.text for s in doc.sents]


def test_pysbd_sentencizer_equals_scispacys(golden_sections):
    # Our fast copy must give exactly scispaCy's boundaries: compare on every 10th
    # section of the golden sections of the public notes (~320 real sections).
    sections = [s for r in golden_sections["results"] if r != "ERROR" for s in r][::10]
    ours, theirs = _blank("clinical_pysbd_sentencizer"), _blank("pysbd_sentencizer")
    differ = [i for i, (a, b) in enumerate(zip(ours.pipe(sections), theirs.pipe(sections)))
              if [t.is_sent_start for t in a] != [t.is_sent_start for t in b]]
    assert len(sections) == 319 and differ == []  # every 10th of the 3,182 golden sections


def test_components_declare_what_they_do_and_own_their_segmenter():
    meta = {name: Language.get_factory_meta(name) for name in
            ("clinical_pysbd_sentencizer", "clinical_forced_sentence_starts", "deid_placeholder_merge")}
    assert meta["clinical_pysbd_sentencizer"].assigns == ["token.is_sent_start", "doc.sents"]
    assert meta["clinical_forced_sentence_starts"].assigns == ["token.is_sent_start"]
    assert meta["deid_placeholder_merge"].retokenizes and not meta["clinical_pysbd_sentencizer"].retokenizes
    # each pipeline's sentencizer has a segmenter of its own (it keeps the text it works on)
    first, second = build_pipeline(None)[0], build_pipeline(None)[0]
    segmenters = [nlp.get_pipe("clinical_pysbd_sentencizer").segmenter for nlp in (first, second)]
    assert all(isinstance(s, LinearSegmenter) for s in segmenters) and segmenters[0] is not segmenters[1]
    text = "Seen today. Went home.\n\nPlan: rest."
    assert _sents(first(text)) == _sents(second(text)) == ["Seen today.", "Went home.\n\n", "Plan: rest."]


def test_forced_starts_are_the_originals():
    nlp = _blank("clinical_forced_sentence_starts")
    doc = nlp("He is fine - the end . Next one. later - - x y")
    starts = [t.text for t in doc if t.is_sent_start]
    # after "-" before a non-"-" ("the"); after "." before title-case ("Next"); not
    # after "one." (one token with its dot), not after "-" before "-"; "- x" counts.
    assert starts == ["He", "the", "Next", "x"]
    # The last two tokens are not looked at: "a - b" has no forced start on "b".
    assert [t.text for t in nlp("a - b") if t.is_sent_start] == ["a"]
    assert [t.text for t in nlp("a - b c") if t.is_sent_start] == ["a", "b"]


def test_placeholder_is_one_token_without_inner_boundary(nlp):
    doc = nlp("Seen by [**Name - Doe**] today. Went home.")
    assert [t.text for t in doc][:4] == ["Seen", "by", "[**Name - Doe**]", "today"]
    # without the merge the forced start after "-" would split the placeholder
    assert _sents(doc) == ["Seen by [**Name - Doe**] today.", "Went home."]


def test_placeholder_pattern_is_the_originals_greedy_one(nlp):
    # `\[\*\*.{0,15}.*?\*\*\]`: the greedy .{0,15} swallows a short placeholder's own
    # "**]", so the match runs on to the NEXT "**]" on the line; the original merged
    # that whole stretch into one token, so no sentence can end inside it. Faithful.
    doc = nlp("Seen by [**Name - Doe 12**] today. Went to [**Hospital1 18**] and home.")
    assert "[**Name - Doe 12**] today. Went to [**Hospital1 18**]" in [t.text for t in doc]
    assert _sents(doc) == ["Seen by [**Name - Doe 12**] today. Went to [**Hospital1 18**] and home."]
    # a placeholder of more than 15 characters after "[**" ends at its own "**]"
    doc = nlp("At [**Hospital Name Long 1234**] today. Went to [**Hospital1 18**] and home.")
    assert "[**Hospital Name Long 1234**]" in [t.text for t in doc]


def test_note_text_rules():
    vocab = spacy.blank("en").vocab
    doc = Doc(vocab, words=["Pain", "\n", "resolved", ".", "\n\n", "Home", "."],
              spaces=[False, False, False, False, False, False, False],
              sent_starts=[True, False, False, False, True, True, False])
    # "\n" inside a sentence -> " ", no strip; the whitespace-only sentence "\n\n" is
    # kept as "  "; one extra "\n" ends the note; words are whitespace-separated.
    assert _sents(doc) == ["Pain\nresolved.", "\n\n", "Home."]
    assert note_text([doc]) == ("Pain resolved.\n  \nHome.\n\n", 3, 3)
    assert note_text([]) == ("", 0, 0)
    assert note_text([Doc(vocab, words=[])]) == ("", 0, 0)


def test_model_free_pipeline_output(nlp):
    sections = ["HISTORY OF PRESENT ILLNESS: He is a 76 yo man with chest pain. He was admitted.",
                "Discharge Medications:", "2. Lisinopril 10 mg daily.\nDisp:*30 Tablet(s)* Refills:*2*"]
    text, n_sentences, n_words = note_text(nlp.pipe(sections))
    # "2." is tokenized "2" "." and "Lisinopril" is title-case: a forced start; pysbd
    # starts "Disp" on the new line, whose "\n" stays at the end of the sentence
    # before it and becomes a space there (no strip).
    assert text == ("HISTORY OF PRESENT ILLNESS: He is a 76 yo man with chest pain.\n"
                    "He was admitted.\n"
                    "Discharge Medications:\n"
                    "2.\nLisinopril 10 mg daily. \nDisp:*30 Tablet(s)* Refills:*2*\n\n")
    assert (n_sentences, n_words) == (6, 13 + 3 + 2 + 1 + 4 + 3)


def test_model_branch_with_a_tiny_parser(tmp_path):
    # en_core_sci_md is not installable here; a freshly initialised (untrained) parser
    # saved to disk exercises the same branch: load by path, components around the
    # parser in the original's order, placeholder merge on a parsed doc.
    from spacy.training import Example
    tiny = spacy.blank("en")
    tiny.add_pipe("parser")
    doc = tiny.make_doc("He ran home . She sat .")
    example = Example.from_dict(doc, {"heads": [1, 1, 1, 1, 5, 5, 5],
                                      "deps": ["nsubj", "ROOT", "advmod", "punct", "nsubj", "ROOT", "punct"]})
    tiny.initialize(get_examples=lambda: [example])
    tiny.to_disk(tmp_path / "tiny")
    nlp, description = build_pipeline(str(tmp_path / "tiny"))
    assert nlp.pipe_names == ["clinical_forced_sentence_starts", "parser", "deid_placeholder_merge"]
    assert "parser" in description and "model-free" not in description
    doc = nlp("He is fine - the end . Seen at [**Name - Doe**] today .")
    assert "[**Name - Doe**]" in [t.text for t in doc]
    assert [t.is_sent_start for t in doc if t.text in ("the", "Seen")] == [True, True]  # forced
    # The untrained parser puts boundaries where it likes, but never inside the placeholder
    # (its inner "-" would be a forced start without the merge).
    inside = range(doc.text.index("[**") + 1, doc.text.index("**]") + 3)
    starts = [s.start_char for s in doc.sents]
    assert starts[0] == 0 and len(starts) >= 3 and not any(c in inside for c in starts)


def test_missing_model_is_a_clear_error():
    with pytest.raises(SpacyModelError, match="en_core_sci_md_not_installed_here.*not found"):
        build_pipeline("en_core_sci_md_not_installed_here")


def test_placeholder_spans_are_the_original_patterns_matches():
    import random
    from section_split.sentences import _DEID, placeholder_spans
    rng = random.Random(0)
    parts = ["[**", "**]", "a", "bc", "\n", " ", "*", "[", "]", "**", "[*", "xyz12345", "Name 12"]
    for _ in range(5000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(0, 40)))
        assert list(placeholder_spans(text)) == [m.span() for m in _DEID.finditer(text)], repr(text)


def test_unclosed_placeholders_on_one_line_cost_linear_time(nlp):
    # The original regex retries to the end of the line from every unclosed "[**":
    # 100 KB of them took 75 s. Counted, not timed: the characters that str.find
    # examines double when the text doubles.
    from section_split.sentences import placeholder_spans

    class Counted(str):
        examined = 0

        def find(self, sub, start=0, *args):
            found = str.find(self, sub, start, *args)
            Counted.examined += (found if found >= 0 else len(self)) - start
            return found

    work = []
    for n in (2000, 4000):
        Counted.examined = 0
        # faithfully, the first "[**" runs on to the line's only "**]"
        assert list(placeholder_spans(Counted("[**Name a. " * n + "[**Name 1**] end."))) == [(0, 11 * n + 12)]
        work.append(Counted.examined)
    assert 1.9 < work[1] / work[0] < 2.1
    doc = nlp("Seen. [**Name a. " * 200 + "\n[**Name 1**] end.")
    assert "[**Name 1**]" in [t.text for t in doc]
