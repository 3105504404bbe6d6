"""PNG figures for reports: confusion heatmaps and loss curves.

Files are written atomically (temp file in the same directory, then ``os.replace``) so a run
killed mid-write, or a report viewer polling the directory, never sees a truncated image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # training runs headless; must precede the pyplot import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nlu.errors import DataError  # noqa: E402
from nlu.files import atomic_path  # noqa: E402


def _save(figure: plt.Figure, path: str | os.PathLike) -> Path:
    try:
        with atomic_path(path) as temp:
            figure.savefig(temp, format="png", dpi=120)
    finally:
        plt.close(figure)  # pyplot keeps every open figure alive otherwise
    return Path(path)


def plot_heatmap(
    matrix: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
    title: str,
    normalized: bool,
) -> Path:
    """Confusion heatmap, rows = true label, columns = predicted label, value printed in each cell.

    Sized for 7-25 labels: the figure grows with the label count so every cell keeps the same
    size (about 0.55 inch) and the printed values stay legible at one fixed font size;
    normalised matrices print two decimals.
    """
    matrix = np.asarray(matrix)
    size = len(labels)
    if matrix.shape != (size, size):
        raise DataError(f"matrix of shape {matrix.shape} does not match {size} labels")
    side = max(5.0, 0.55 * size + 2.5)
    figure, axes = plt.subplots(figsize=(side + 1.5, side))
    top = float(matrix.max()) if matrix.size and matrix.max() > 0 else 1.0
    image = axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=top)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks(range(size), labels=labels, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(size), labels=labels)
    axes.set_xlabel("Predicted")
    axes.set_ylabel("True")
    axes.set_title(title)
    for row in range(size):
        for col in range(size):
            value = matrix[row, col]
            text = f"{value:.2f}" if normalized else f"{int(value)}"
            # White on the dark half of the colour map, black on the light half.
            colour = "white" if value > top / 2 else "black"
            axes.text(col, row, text, ha="center", va="center", color=colour, fontsize=9)
    figure.tight_layout()
    return _save(figure, path)


def plot_curves(
    series: dict[str, Sequence[tuple[float, float]]],
    path: str | os.PathLike,
    xlabel: str,
    ylabel: str,
    title: str,
) -> Path:
    """One line per named series of (x, y) points, e.g. train vs held-out loss, or nlu vs a reference."""
    if not any(series.values()):
        raise DataError(f"nothing to plot for {title!r}: every series is empty")
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, points in series.items():
        if points:
            xs, ys = zip(*points)
            axes.plot(xs, ys, label=name, marker="o" if len(points) < 30 else None, markersize=3)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return _save(figure, path)
