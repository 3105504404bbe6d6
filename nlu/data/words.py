"""Raw text into words: the split BERT's own tokenizer makes before WordPiece.

One rule (``BertNormalizer`` + ``BertPreTokenizer``) for prediction on raw text and for the
training-time check of how far a data set's own words differ from it: words are runs of
characters between whitespace; every punctuation character (Unicode category P*, and the ASCII
symbols ``$+<=>^`|~``) and every CJK ideograph is a word by itself; control and format characters
(zero-width space, U+FFFD, ...) belong to no word and split none. Two consequences: no sub-token
ever crosses a word boundary, and transformers' token-classification pipeline sees exactly the
same words, so a model exported with ``nlu export`` serves the same entities from the same text.
("don't" is three words, don ' t; "U.S." is four: the model's tokenizer splits them there anyway.)
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# Unicode White_Space without the control characters among it (\v, \f, \x85), which BERT's
# normalizer removes instead; tab, newline and carriage return stay separators.
WHITESPACE = frozenset("\t\n\r \xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


@lru_cache(maxsize=None)
def character_kind(character: str) -> str:
    """'space', 'skip' (removed by BERT's normalizer), 'alone' (a word by itself) or 'word'
    (cached: a text repeats few distinct characters many times)."""
    if character in WHITESPACE:
        return "space"
    category = unicodedata.category(character)
    if category in ("Cc", "Cf", "Co", "Cs") or character == "\ufffd":
        return "skip"
    code = ord(character)
    if (code < 128 and not character.isalnum()) or category.startswith("P") \
            or any(low <= code <= high for low, high in CJK_RANGES):
        return "alone"
    return "word"


def split_words(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the words of ``text``, by the rule in the module docstring;
    ``text[start:end]`` is the word."""
    spans: list[tuple[int, int]] = []
    start = end = None  # the open word: its first and one past its last kept character
    for index, character in enumerate(text):
        kind = character_kind(character)
        if kind == "skip":
            continue
        if kind == "word":
            start = index if start is None else start
            end = index + 1
            continue
        if start is not None:
            spans.append((start, end))
            start = None
        if kind == "alone":
            spans.append((index, index + 1))
    if start is not None:
        spans.append((start, end))
    return spans


def words_of_text(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    offsets = split_words(text)
    return [text[start:end] for start, end in offsets], offsets
