"""A WordPiece vocabulary trained on the pretraining corpus, kept in transformers' format.

Training our own vocabulary (rather than downloading BERT's) keeps the project offline and fits
the vocabulary to the corpus; saving it with ``save_pretrained`` means any checkpoint's tokenizer
loads with plain ``transformers.AutoTokenizer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, BertTokenizerFast, PreTrainedTokenizerBase

from nlu.data.corpus import read_documents
from nlu.errors import CheckpointError, ConfigError, DataError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
"""The trainer gives these the first ids in this order, so [PAD] is 0, which the model's
embeddings and BERT's conventions assume."""
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))


def train_tokenizer(
    files: Sequence[str | PathLike] | Iterable[str],
    vocab_size: int,
    min_frequency: int = 2,
    lowercase: bool = True,
) -> BertTokenizerFast:
    """Train BERT's WordPiece pipeline. A list or tuple is read as corpus files (with the corpus
    reader, so the vocabulary is learnt from exactly the sentences pretraining will see); any
    other iterable is taken as texts, which is how a ``datasets`` column is passed (wrap a plain
    list of texts in ``iter()``)."""
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ConfigError(f"vocab_size ({vocab_size}) must exceed the {len(SPECIAL_TOKENS)} special tokens")
    backend = _untrained_pipeline(lowercase)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##", show_progress=False,
    )
    backend.train_from_iterator(_training_texts(files), trainer)
    if backend.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise DataError("the tokenizer's training text is empty")
    _renumber_sorted(backend)
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
    )
    pad, unk, cls, sep, mask = SPECIAL_TOKENS
    return BertTokenizerFast(
        tokenizer_object=backend, do_lower_case=lowercase,
        pad_token=pad, unk_token=unk, cls_token=cls, sep_token=sep, mask_token=mask,
    )


def _untrained_pipeline(lowercase: bool) -> Tokenizer:
    """BERT's normalisation and pre-tokenisation, so the result behaves like an uncased (or cased)
    BERT tokenizer: accents follow ``lowercase`` as in the original, control characters go."""
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    return backend


def _renumber_sorted(backend: Tokenizer) -> None:
    """The trainer numbers tokens in hash-map order, so two trainings on the same text give
    different ids (huggingface/tokenizers#1794). WordPiece lookup depends only on the set of
    tokens, so numbering them in sorted order (special tokens first) makes the ids reproducible
    whenever the set is; on small corpora, ties between equally frequent merges can still change
    the set itself, so keep the saved tokenizer with the run rather than retraining."""
    trained = backend.model
    vocab = backend.get_vocab()
    ordered = SPECIAL_TOKENS + sorted(set(vocab) - set(SPECIAL_TOKENS))
    backend.model = models.WordPiece(
        {token: index for index, token in enumerate(ordered)}, unk_token=trained.unk_token,
        continuing_subword_prefix=trained.continuing_subword_prefix,
        max_input_chars_per_word=trained.max_input_chars_per_word,
    )


def _training_texts(files: Sequence[str | PathLike] | Iterable[str]) -> Iterable[str]:
    if isinstance(files, (list, tuple)):
        # read_documents runs now, so a bad file fails before training starts.
        return (sentence for document in read_documents(files) for sentence in document.sentences)
    return files


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: str | PathLike) -> None:
    tokenizer.save_pretrained(str(directory))


def load_tokenizer(directory: str | PathLike) -> PreTrainedTokenizerBase:
    """Only fast tokenizers are accepted: the data pipeline needs batched encoding and
    ``word_ids()`` (to align word-level labels), which slow tokenizers lack."""
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(f"{path}: tokenizer directory not found")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as error:  # a broken file surfaces as KeyError, JSONDecodeError, tokenizers' bare Exception...
        raise CheckpointError(f"{path}: cannot load a tokenizer from this directory ({error})") from error
    if not tokenizer.is_fast:
        raise CheckpointError(f"{path}: holds a slow (Python) tokenizer; save a fast one (tokenizer.json)")
    return tokenizer
