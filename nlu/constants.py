"""Values that model, data and tokenizer code must agree on, kept below all of them."""

IGNORE_INDEX = -100
"""Label id that the losses skip (torch's cross_entropy default): padding, [CLS]/[SEP], and the
later sub-tokens of a word in NER."""

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
"""The tokens nlu's own WordPiece training reserves. The trainer gives these the first ids in this
order, so [PAD] is 0, which BERT's conventions assume. Tokenizers brought with ``init=`` (e.g.
XLM-R's ``<s> </s> <pad> <unk> <mask>``) keep their own ids: code reads ids from the tokenizer."""
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
