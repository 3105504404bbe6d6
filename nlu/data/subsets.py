"""Slices of datasets written back as files, for studies on a budget (a smoke run, a training
subset two frameworks must both read): the runs then go through nlu's ordinary file readers,
exactly as ``nlu finetune`` would, and the slice files are what both sides are given."""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

from nlu.data.classification import TextExample
from nlu.data.ner import NerSentence, label_list
from nlu.errors import DataError


def write_conll(path: str | PathLike, sentences: Sequence[NerSentence]) -> Path:
    """``word<TAB>tag`` lines, a blank line after each sentence: what read_ner_file reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(s.words, s.tags)) + "\n" for s in sentences),
                    encoding="utf-8")
    return path


def write_table(path: str | PathLike, examples: Sequence[TextExample]) -> Path:
    """A ``text,label`` CSV (``text,text_pair,label`` for pairs), RFC 4180 quoting: what read_table reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs = any(example.text_pair is not None for example in examples)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "text_pair", "label"] if pairs else ["text", "label"])
        writer.writerows([e.text, e.text_pair, e.label] if pairs else [e.text, e.label] for e in examples)
    return path


def stratified_subset(examples: Sequence[TextExample], size: int, seed: int) -> list[TextExample]:
    """``size`` examples with the label proportions of ``examples`` (largest remainders, at least
    one of each label), drawn with ``seed``, in their original order."""
    by_label: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        by_label.setdefault(str(example.label), []).append(index)
    shares = {label: size * len(indices) / len(examples) for label, indices in by_label.items()}
    counts = {label: max(1, int(share)) for label, share in shares.items()}
    for label in sorted(shares, key=lambda name: shares[name] - int(shares[name]), reverse=True):
        if sum(counts.values()) >= size:
            break
        counts[label] += 1
    generator = random.Random(seed)
    chosen = [index for label, indices in sorted(by_label.items())
              for index in generator.sample(indices, min(counts[label], len(indices)))]
    return [examples[index] for index in sorted(chosen)]


def draw_subsets(splits: Mapping[str, Sequence], sizes: Mapping[str, int | None], seed: int
                 ) -> tuple[dict[str, list], dict[str, int]]:
    """Train, dev and test records (in that order) cut to ``sizes``, each draw seeded and in file
    order: examples stratified by label (:func:`stratified_subset`), sentences at random. When train
    is cut, dev and test keep only sentences whose entity types the train draw has (nlu refuses to
    score a type it never trained on); how many each split lost that way is returned beside the
    draws, so a caller can report it. A size larger than its split is an error, not "all of it"."""
    drawn: dict[str, list] = {}
    unseen_types: dict[str, int] = {}
    known: set[str] | None = None
    for split in ("train", "dev", "test"):
        records = given = list(splits.get(split) or [])
        if known is not None and records and isinstance(records[0], NerSentence):
            records = [sentence for sentence in records if set(sentence.tags) <= known]
            unseen_types[split] = len(given) - len(records)
        size = sizes.get(split)
        if size:
            if size > len(records):
                left_out = f" ({unseen_types[split]:,} left out for entity types the train draw lacks)" if (
                    unseen_types.get(split)) else ""
                raise DataError(f"a subset of {size:,} {split} records was asked for, but the split has "
                                f"{len(records):,}{left_out}", given[0].source if given else None)
            if isinstance(records[0], TextExample):
                records = stratified_subset(records, size, seed)
            else:
                records = [records[index] for index in sorted(random.Random(seed).sample(range(len(records)), size))]
        drawn[split] = records
        if split == "train" and size and isinstance(records[0], NerSentence):
            known = set(label_list(records))
    return drawn, unseen_types


def write_records(stem: Path, records: Sequence[NerSentence | TextExample]) -> Path:
    """``stem``.conll for sentences, ``stem``.csv for examples: files nlu's readers read back as they were."""
    if records and isinstance(records[0], NerSentence):
        return write_conll(stem.with_suffix(".conll"), records)
    return write_table(stem.with_suffix(".csv"), records)
