"""Pretraining text: documents made of sentences, read from plain text files or a ``datasets`` table.

Sentence boundaries matter because next-sentence prediction pairs whole sentences, and document
boundaries matter because a "random next" segment must come from another document. The file
format is BERT's: one sentence per line, a blank line between documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from nlu.data.text import read_text_lines
from nlu.errors import DataError


@dataclass
class Document:
    """``source`` and ``line`` say where the document starts, so problems found later (a document
    that tokenizes to nothing, an odd statistic) can be traced back to the input. For a file,
    ``line`` is the 1-based line of the first sentence; for a dataset it is the row index."""

    sentences: list[str]
    source: str
    line: int


def read_documents(paths: Sequence[str | PathLike]) -> list[Document]:
    """Read every file in order. Lines are stripped, so indentation or trailing spaces never leak
    into the vocabulary, and runs of blank lines count as one document break."""
    if not paths:
        raise DataError("no corpus files given")
    return [document for path in paths for document in _read_file(Path(path))]


def _read_file(path: Path) -> list[Document]:
    if not path.exists():
        raise DataError("corpus file not found", path)
    documents: list[Document] = []
    sentences: list[str] = []
    start = 0
    # read_text_lines ends lines at \n, \r\n and a lone \r only, so line numbers match what an
    # editor shows even when a sentence contains other Unicode line separators.
    for number, line in read_text_lines(path):
        text = line.strip()
        if text:
            if not sentences:
                start = number
            sentences.append(text)
        elif sentences:
            documents.append(Document(sentences, str(path), start))
            sentences = []
    if sentences:
        documents.append(Document(sentences, str(path), start))
    if not documents:
        raise DataError("the file holds no sentences (it is empty or blank)", path)
    return documents


def documents_from_dataset(dataset: Any, text_column: str = "text", document_column: str | None = None) -> list[Document]:
    """Documents from a ``datasets.Dataset``, which stores corpora in one of two shapes: one row per
    document (its text split into sentences on newlines), or, given ``document_column``, one
    sentence per row with a document key; rows sharing a key form a document in row order, and
    documents come in the order their keys first appear."""
    source = dataset.info.dataset_name or "dataset"
    for column in (text_column, document_column):
        if column is not None and column not in dataset.column_names:
            raise DataError(f"no column {column!r} (columns: {', '.join(dataset.column_names)})", source)
    texts = _checked_texts(dataset[text_column], text_column, source)
    if document_column is None:
        documents = [Document(_split_lines(text), source, row) for row, text in enumerate(texts)]
    else:
        documents = _group_rows(texts, dataset[document_column], source)
    documents = [document for document in documents if document.sentences]
    if not documents:
        raise DataError(f"column {text_column!r} holds no sentences", source)
    return documents


def _checked_texts(values: Iterable[Any], column: str, source: str) -> Iterator[str]:
    for row, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(f"row {row}: column {column!r} holds {type(value).__name__}, not text", source)
        yield value


def _split_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _group_rows(texts: Iterable[str], keys: Iterable[Any], source: str) -> list[Document]:
    documents: dict[Any, Document] = {}
    for row, (text, key) in enumerate(zip(texts, keys, strict=True)):
        document = documents.setdefault(key, Document([], source, row))
        document.sentences += _split_lines(text)
    return list(documents.values())


def encode_sentences(sentences: Sequence[str], tokenizer: Any, batch_size: int = 1000) -> Iterator[list[int]]:
    """WordPiece ids without special tokens, one list per sentence. Batches because a fast
    tokenizer encodes a batch on all cores, while one huge call would hold every encoding in
    memory at once."""
    for start in range(0, len(sentences), batch_size):
        batch = list(sentences[start:start + batch_size])
        # verbose=False: sentences longer than model_max_length are expected here (they are cut
        # into segments later), so the "sequence too long" warning would be noise.
        yield from tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]


def corpus_statistics(documents: Sequence[Document], tokenizer: Any = None) -> dict[str, int]:
    """Sizes for the run report; ``words`` splits on whitespace, so that figure does not depend on
    the tokenizer and can be compared across vocabularies."""
    sentences = [sentence for document in documents for sentence in document.sentences]
    statistics = {
        "documents": len(documents),
        "sentences": len(sentences),
        "words": sum(len(sentence.split()) for sentence in sentences),
    }
    if tokenizer is not None:
        statistics["tokens"] = sum(len(ids) for ids in encode_sentences(sentences, tokenizer))
    return statistics
