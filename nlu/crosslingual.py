"""One fine-tuned NER model scored on several labelled test sets (languages) into one table: the
zero-shot, cross-lingual evaluation of PAN-X-style studies (fine-tune on German, score German,
Russian, Turkish, English).

Each test set is read through a task file, so its scheme (IOB1), tag map (PERSON -> PER, OTH -> O)
and columns are exactly those a run on that language would use; each is scored by
:func:`nlu.tasks.ner.evaluate_ner`, which writes its full report (per-type scores, confusion
matrices) into a folder per language.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from nlu.data.ner import NerSentence
from nlu.data.text import read_text_lines
from nlu.errors import DataError
from nlu.files import write_text_atomic
from nlu.options import fill
from nlu.predict import load
from nlu.settings import load_settings
from nlu.tasks.ner import NerData, evaluate_ner, read_split

T = TypeVar("T")


def read_blocks(path: str | PathLike) -> list[list[str]]:
    """The sentences of a CoNLL file as their lines, verbatim (blank lines separate sentences),
    so that slices written back keep the original tags for a task file's scheme and tag map."""
    blocks: list[list[str]] = [[]]
    for _, text in read_text_lines(path):
        if text.strip():
            blocks[-1].append(text)
        elif blocks[-1]:
            blocks.append([])
    blocks = [block for block in blocks if block]
    if not blocks:
        raise DataError("no sentences", str(path))
    return blocks


def write_blocks(path: Path, blocks: Sequence[Sequence[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join("\n".join(block) + "\n\n" for block in blocks))
    return path


def sample_blocks(blocks: Sequence[T], sizes: Mapping[str, int], seed: int) -> dict[str, list[T]]:
    """Disjoint samples of ``sizes[name]`` sentences (blocks, or any records) each: one shuffle with ``random.Random(seed)``
    cut in the order of ``sizes`` (the rule of nlu.data.splits), each sample in file order; the
    rest of the file is left out."""
    if sum(sizes.values()) > len(blocks):
        raise DataError(f"{len(blocks):,} sentences are fewer than the {sum(sizes.values()):,} asked for ({dict(sizes)})")
    order = list(range(len(blocks)))
    random.Random(seed).shuffle(order)
    samples, start = {}, 0
    for name, size in sizes.items():
        samples[name] = [blocks[i] for i in sorted(order[start:start + size])]
        start += size
    return samples


def read_test_split(task_file: str | PathLike, overrides: Sequence[str] = ()) -> list[NerSentence]:
    """The test split of an NER task file (with overrides), read as a run would read it."""
    settings = load_settings(task_file, list(overrides), task="ner")
    data = fill(NerData, settings.data, f"{settings.source}: data")
    return read_split(data, "test").sentences


def evaluate_languages(model: str | PathLike, test_sets: Mapping[str, Sequence[NerSentence]], out_dir: Path,
                       batch_size: int = 64) -> dict[str, dict[str, Any]]:
    """Score the NER model (run folder or model folder) on every test set, in fp32 on the CPU (the
    numbers of the run's own test evaluation); each set's report goes to ``out_dir/<name>``.
    Returns per set: micro F1 (strict IOB2), precision, recall, per-type F1 and support."""
    tagger = load(model, "cpu", precision="no", batch_size=batch_size)
    data = NerData(max_length=tagger.max_length, stride=tagger.stride, eval_batch_size=batch_size)
    table: dict[str, dict[str, Any]] = {}
    for name, sentences in test_sets.items():
        results = evaluate_ner(tagger.model, tagger.tokenizer, list(sentences), out_dir / name, data,
                               f"NER evaluation: {name}", f"{name} test")
        scores = results["entity_strict"]
        micro = scores["averages"]["micro"]
        table[name] = {"f1": micro["f1"], "precision": micro["precision"], "recall": micro["recall"],
                       "per_type_f1": {kind: row["f1"] for kind, row in scores["per_class"].items()},
                       "support": {kind: row["support"] for kind, row in scores["per_class"].items()},
                       "sentences": results["sentences"], "report": str(out_dir / name / "report.md")}
    return table
