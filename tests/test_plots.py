"""Heatmaps and curves: valid PNGs, written atomically, sized for the label count."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from nlu.errors import DataError
from nlu.evaluation.plots import plot_curves, plot_heatmap

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_MAGIC
    return matplotlib.image.imread(path)


def test_heatmap_counts_and_normalized(tmp_path):
    labels = [f"B-T{i}" for i in range(7)]
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=(7, 7))
    small = read_png(plot_heatmap(counts, labels, tmp_path / "counts.png", "counts", normalized=False))
    big_labels = [f"I-TYPE{i}" for i in range(25)]
    rates = rng.random((25, 25))
    rates /= rates.sum(axis=1, keepdims=True)
    big = read_png(plot_heatmap(rates, big_labels, tmp_path / "rates.png", "rates", normalized=True))
    assert small.ndim == 3 and small.shape[0] > 400
    assert big.shape[0] > small.shape[0] and big.shape[1] > small.shape[1]  # figure grows with the labels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.png", "rates.png"]  # no temp files left


def test_heatmap_shape_mismatch_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"shape \(2, 2\) does not match 3 labels"):
        plot_heatmap(np.zeros((2, 2)), ["a", "b", "c"], tmp_path / "x.png", "x", normalized=False)
    assert not list(tmp_path.iterdir())


def test_curves(tmp_path):
    series = {
        "train": [(step, 2.0 / (1 + step)) for step in range(50)],
        "held-out": [(step, 2.5 / (1 + step) + 0.1) for step in range(0, 50, 10)],
    }
    image = read_png(plot_curves(series, tmp_path / "loss.png", "step", "loss", "loss curves"))
    assert image.shape[0] > 300 and image.shape[1] > 500
    with pytest.raises(DataError, match="every series is empty"):
        plot_curves({"train": []}, tmp_path / "empty.png", "step", "loss", "empty")

