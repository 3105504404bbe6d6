"""Slices of datasets written back as files, for studies on a budget (a smoke run, a training
subset two frameworks must both read): the runs then go through nlu's ordinary file readers,
exactly as ``nlu finetune`` would, and the slice files are what both sides are given."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from nlu.data.classification import TextExample, read_table
from nlu.data.ner import NerSentence, read_ner_file


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


def write_slices(files: dict[str, str | PathLike], limits: dict[str, int | None], folder: Path,
                 seed: int) -> dict[str, str]:
    """Train, dev and test (in that order) cut to ``limits``, written under ``folder``; a split
    without a limit keeps its file. NER (.conll): the first sentences, dev and test only those
    whose tags the train slice has (nlu refuses tags it never trained on); tables: a stratified
    subset. Returns the files to train on."""
    written: dict[str, str] = {}
    known: set[str] = set()
    for split, source in files.items():
        limit = limits.get(split)
        if str(source).endswith(".conll"):
            sentences = read_ner_file(source)
            if limit and split != "train":
                sentences = [s for s in sentences if set(s.tags) <= known]
            sentences = sentences[:limit] if limit else sentences
            known |= {tag for s in sentences for tag in s.tags}
            written[split] = str(write_conll(folder / f"{split}.conll", sentences) if limit else source)
        else:
            written[split] = str(write_table(folder / f"{split}.csv", stratified_subset(read_table(source), limit, seed))
                                 if limit else source)
    return written
