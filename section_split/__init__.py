"""Clinical notes -> sections (original clinicalBERT rules) -> sentences (scispaCy).

`split_sections` is the faithful port of the original heuristics (its steps are listed in
`section_split.sections`); `section_split.sentences` turns sections into the one-sentence-per-line text
that BERT's create_pretraining_data reads; `python -m section_split` runs both over a
notes file, in parallel and resumably.
"""
from section_split.sections import SectionSplitError, split_sections

__all__ = ["SectionSplitError", "split_sections"]
