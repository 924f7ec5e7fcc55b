"""Sub-token encoding of NER sentences and overlapping windows, so every word is scored.

A word's label sits on its first sub-token (the other sub-tokens are ignored by the loss
and by prediction), as in BERT's NER recipe. A sentence longer than the model's window
(max length minus [CLS] and [SEP]) is cut into windows overlapping by at least half a
window; each sub-token is predicted by the window in which it has the most context on
both sides (the BERT SQuAD "max context" rule), so no word is truncated out of the score.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class EncodedSentence:
    ids: list[int]          # sub-token ids of the whole sentence (no special tokens)
    word_starts: list[int]  # index in `ids` of each word's first sub-token


def encode_words(tokenizer, words: Sequence[str]) -> EncodedSentence:
    """Sub-token ids of `words`; a word the tokenizer reduces to nothing (e.g. a lone
    zero-width character) becomes [UNK], so that it still has a position to be scored."""
    pieces = tokenizer(list(words), add_special_tokens=False)["input_ids"] if words else []
    ids, starts = [], []
    for word_ids in pieces:
        starts.append(len(ids))
        ids.extend(word_ids or [tokenizer.unk_token_id])
    return EncodedSentence(ids, starts)


def window_spans(length: int, size: int, stride: int) -> list[tuple[int, int]]:
    """[(start, end)] windows of at most `size` positions covering range(length); consecutive
    windows start `stride` apart (the last one is aligned to the end)."""
    if size < 1 or not 1 <= stride <= size:
        raise ValueError(f"window size {size} and stride {stride}: need 1 <= stride <= size")
    if length <= size:
        return [(0, length)]
    starts = list(range(0, length - size, stride)) + [length - size]
    return [(s, s + size) for s in starts]


def owning_window(position: int, spans: Sequence[tuple[int, int]]) -> int:
    """Index of the window that predicts `position`: the most context on its shorter side
    (ties: the earlier window)."""
    best, best_context = -1, -1
    for i, (start, end) in enumerate(spans):
        if start <= position < end:
            context = min(position - start, end - 1 - position)
            if context > best_context:
                best, best_context = i, context
    return best


@dataclass(frozen=True)
class Window:
    sentence: int                # index of the sentence
    input_ids: list[int]         # [CLS] sub-tokens [SEP]
    label_ids: list[int]         # per input position; -100 where no label is trained
    score_positions: list[int]   # input positions whose prediction this window owns
    score_words: list[int]       # the word index of each of those positions


def sentence_windows(index: int, enc: EncodedSentence, label_ids: Sequence[int], cls_id: int,
                     sep_id: int, max_length: int) -> list[Window]:
    """The windows of one encoded sentence (labels on first sub-tokens)."""
    body = max_length - 2
    spans = window_spans(len(enc.ids), body, max(1, body // 2))
    first_of = {pos: w for w, pos in enumerate(enc.word_starts)}
    owners = {pos: owning_window(pos, spans) for pos in first_of}
    windows = []
    for i, (start, end) in enumerate(spans):
        labels = [-100] * (end - start)
        positions, words = [], []
        for pos in range(start, end):
            if pos in first_of:
                labels[pos - start] = label_ids[first_of[pos]]
                if owners[pos] == i:
                    positions.append(pos - start + 1)
                    words.append(first_of[pos])
        windows.append(Window(index, [cls_id] + enc.ids[start:end] + [sep_id],
                              [-100] + labels + [-100], positions, words))
    return windows
