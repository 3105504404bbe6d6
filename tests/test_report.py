"""Report phrasing from the numbers: split composition, headline comparisons against seed noise."""

from __future__ import annotations

from collections import Counter

import pytest

from nlu.evaluation.report import (ahead_by, composition_markdown, seed_spread, settings_block, split_composition,
                                   split_label)
from nlu.runs import resolve
from nlu.settings import RunSettings

TRAINING_CLASSES = [f"c{i}" for i in range(10)]


def test_split_composition_names_size_counts_and_missing_classes():
    # The issue: a stratified dev split held 7 of 10 classes, and no report said so.
    dev = ["c0"] * 40 + ["c1"] * 9 + ["c2"] * 5 + ["c3", "c4", "c5", "c6"]
    composition = split_composition("dev (data/dev.csv)", len(dev), Counter(dev), TRAINING_CLASSES)
    assert composition == {
        "split": "dev (data/dev.csv)", "size": 58, "unit": "examples",
        "class_counts": {"c0": 40, "c1": 9, "c2": 5, "c3": 1, "c4": 1, "c5": 1, "c6": 1},
        "classes": "7 of 10", "missing_classes": ["c7", "c8", "c9"],
    }
    test = split_composition("test", 3, Counter(["c0", "c9", "c9"]), TRAINING_CLASSES)
    assert composition_markdown([composition, test]).splitlines() == [
        "| split | examples | classes | count per class | missing classes |",
        "|---|---:|---:|---|---|",
        "| dev (data/dev.csv) | 58 | 7 of 10 | c0 40, c1 9, c2 5, c3 1, c4 1, c5 1, c6 1 | c7, c8, c9 |",
        "| test | 3 | 2 of 10 | c0 1, c9 2 | c1, c2, c3, c4, c5, c6, c7, c8 |",
    ]


def test_split_label_names_the_files():
    assert split_label("test", ["b.csv", "a.csv", "b.csv", None]) == "test (a.csv, b.csv)"
    assert split_label("dev", [None]) == "dev"


def test_headline_says_ahead_by_within_or_outside_seed_noise_never_beats():
    # The issue: "beats" for 0.1771 vs 0.1762.
    assert ahead_by("pretrained", 0.1771, "scratch", 0.1762, 0.012) == \
        "pretrained ahead of scratch by 0.0009 (within seed noise ±0.0120)"
    assert ahead_by("pretrained", 0.5540, "scratch", 0.7540, 0.02) == \
        "scratch ahead of pretrained by 0.2000 (outside seed noise ±0.0200)"
    assert ahead_by("a", 0.5, "b", 0.5, None) == "a and b tied at 0.5000 (seed noise not measured: a single seed)"
    assert "beats" not in ahead_by("a", 0.9, "b", 0.1, None)


def test_seed_spread_is_the_largest_standard_deviation():
    assert seed_spread([0.50, 0.52, 0.54], [0.40, 0.41]) == pytest.approx(0.02)
    assert seed_spread([0.5], [0.4]) is None


def test_a_panx_runs_settings_say_its_unused_files_were_not_read():
    panx = resolve(RunSettings(task="ner", data={"panx_lang": "de", "local_dir": "runs/panx_data/de"}))
    block = settings_block(panx)
    assert "train: data/ner/wnut16/train.conll" in block  # settings.yaml as it is, defaults included
    assert block.endswith("\nWith data.panx_lang, data.train, dev and test are not read: the splits came from "
                          "`runs/panx_data/de`.\n")
    assert settings_block(resolve(RunSettings(task="ner"))).endswith("```\n")  # files that are read: nothing to say
