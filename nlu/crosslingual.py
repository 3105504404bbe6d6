"""One fine-tuned model scored on several labelled test sets (languages, domains) into one table:
the zero-shot, cross-lingual evaluation of PAN-X-style studies (fine-tune on German, score German,
Russian, Turkish, English), for a sweep's ``test_sets`` (tasks/sweeps/crosslingual.yaml).

Each test set is read through a task file, so its scheme (IOB1), tag map (PERSON -> PER, OTH -> O)
and columns are exactly those a run on that language would use; each is scored by the task's own
evaluation (:func:`nlu.tasks.ner.evaluate_ner`, :func:`nlu.tasks.classify.evaluate_classification`),
which writes its full report (per-class scores, confusion matrices) into a folder per set.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from nlu.data.text import read_text_lines
from nlu.errors import ConfigError, DataError
from nlu.files import write_text_atomic
from nlu.options import fill
from nlu.evaluation.metrics import classification_summary
from nlu.predict import Tagger, load
from nlu.settings import load_settings
from nlu.tasks.classify import ClassifyData, evaluate_classification, read_examples
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


def read_test_split(task_file: str | PathLike, overrides: Sequence[str] = (), task: str | None = None) -> list:
    """The test split of a task file (with overrides), read as a run of it would read it: NER
    sentences (its scheme, tag map, columns) or classification examples (its columns). Only the test
    file is read: a language with nothing but a test set is a test set all the same."""
    settings = load_settings(task_file, list(overrides), task=task)
    if settings.task not in ("ner", "classify"):
        raise ConfigError(f"{settings.source}: a test set is read through an ner or classify task file, "
                          f"not {settings.task}")
    is_ner = settings.task == "ner"
    data = fill(NerData if is_ner else ClassifyData, settings.data, f"{settings.source}: data")
    if data.test is None and not (is_ner and data.panx_lang):
        raise ConfigError(f"{settings.source}: names no test file (data.test) to score a model on")
    return read_split(data, "test").sentences if is_ner else read_examples(data, data.test)


def evaluate_test_sets(model: str | PathLike, test_sets: Mapping[str, Sequence[Any]], out_dir: Path,
                       batch_size: int = 64) -> dict[str, dict[str, Any]]:
    """Score the fine-tuned model (run folder or model folder, nlu's or transformers') on every
    test set, in fp32 on the CPU (the numbers of the run's own test evaluation); each set's full
    report goes to ``out_dir/<name>``. Returns per set its evaluation's results (metrics.json)."""
    predictor = load(model, "cpu", precision="no", batch_size=batch_size)
    results: dict[str, dict[str, Any]] = {}
    for name, records in test_sets.items():
        if isinstance(predictor, Tagger):
            data = NerData(max_length=predictor.max_length, stride=predictor.stride, eval_batch_size=batch_size)
            results[name] = evaluate_ner(predictor.model, predictor.tokenizer, list(records), out_dir / name, data,
                                         f"NER evaluation: {name}", f"{name} test")
        else:
            results[name] = evaluate_classification(predictor.model, predictor.tokenizer, list(records), out_dir / name,
                                                    predictor.max_length, batch_size, predictor.adjustment,
                                                    f"Classification evaluation: {name}", f"{name} test")
    return results


def summary_figures(results: Mapping[str, Any]) -> dict[str, float]:
    """An evaluation's results as the figures a run's summary gives its own test split:
    ``test_f1``, ``test_macro_f1`` and ``test_f1[TYPE]`` (NER), or ``test_macro_f1``, balanced
    accuracy, accuracy and per-class recall (classification)."""
    if "scores" in results:
        return classification_summary(results["scores"], "test")
    strict = results["entity_strict"]
    return {"test_f1": strict["averages"]["micro"]["f1"], "test_macro_f1": strict["averages"]["macro"]["f1"],
            **{f"test_f1[{kind}]": row["f1"] for kind, row in strict["per_class"].items()}}

