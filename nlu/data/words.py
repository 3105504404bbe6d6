"""Raw text into words: the split BERT's own tokenizer makes before WordPiece.

One rule for prediction on raw text and for the training-time check of how far a data set's own
words differ from it: the tokenizers library's ``BertNormalizer`` (control and format characters
removed, CJK ideographs set apart; case and accents untouched) then ``BertPreTokenizer`` (words
are runs between whitespace, every punctuation character a word by itself), run on the raw text.
Being the tokenizer's own code, it uses the tokenizer's Unicode tables, not Python's (they differ
on a few hundred characters newer than one or the other). Two consequences: no sub-token ever
crosses a word boundary, and transformers' token-classification pipeline sees exactly the same
words, so a model exported with ``nlu export`` serves the same entities from the same text.
("don't" is three words, don ' t; "U.S." is four: the model's tokenizer splits them there anyway.)
"""

from __future__ import annotations

from tokenizers import PreTokenizedString, normalizers, pre_tokenizers

_NORMALIZER = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                         lowercase=False)
_PRE_TOKENIZER = pre_tokenizers.BertPreTokenizer()


def split_words(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the words of ``text``, by the rule in the module docstring;
    ``text[start:end]`` is the word (a removed character inside a word stays inside its span)."""
    pieces = PreTokenizedString(text)
    pieces.normalize(_NORMALIZER.normalize)
    _PRE_TOKENIZER.pre_tokenize(pieces)
    return [span for _, span, _ in pieces.get_splits(offset_referential="original", offset_type="char")]


def words_of_text(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    offsets = split_words(text)
    return [text[start:end] for start, end in offsets], offsets
