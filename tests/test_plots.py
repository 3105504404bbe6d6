"""Heatmaps and curves: valid PNGs, written atomically, sized for the label count."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
from matplotlib.axes import Axes
import numpy as np
import pytest

import nlu.evaluation.plots as plots
from nlu.errors import DataError
from nlu.evaluation.plots import fonts_for, plot_curves, plot_heatmap

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


def test_heatmap_prints_every_nonzero_cell_and_leaves_zeros_blank(tmp_path, monkeypatch):
    printed = []
    draw_text = Axes.text
    monkeypatch.setattr(Axes, "text", lambda self, x, y, s, **kw: printed.append((y, x, s)) or draw_text(self, x, y, s, **kw))
    counts = np.array([[5, 0, 1], [0, 0, 0], [2, 0, 9]])
    plot_heatmap(counts, ["B-A", "I-A", "O"], tmp_path / "counts.png", "counts", normalized=False)
    assert sorted(printed) == [(0, 0, "5"), (0, 2, "1"), (2, 0, "2"), (2, 2, "9")]
    printed.clear()
    plot_heatmap(counts / 10, ["B-A", "I-A", "O"], tmp_path / "rates.png", "rates", normalized=True)
    assert sorted(printed) == [(0, 0, "0.50"), (0, 2, "0.10"), (2, 0, "0.20"), (2, 2, "0.90")]


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



def test_heatmap_row_labels_carry_support(tmp_path, monkeypatch):
    ticks = []
    original = plots.plt.Axes.set_yticks

    def spy(axes, positions, labels=None, **options):
        ticks.append([str(label) for label in labels])
        return original(axes, positions, labels=labels, **options)

    monkeypatch.setattr(plots.plt.Axes, "set_yticks", spy)
    plot_heatmap(np.eye(2), ["PER", "LOC"], tmp_path / "x.png", "test · tags", normalized=True, support=[1, 40])
    assert ticks == [["PER (n=1)", "LOC (n=40)"]]
    with pytest.raises(DataError, match="1 support counts for 2 labels"):
        plot_heatmap(np.eye(2), ["PER", "LOC"], tmp_path / "y.png", "t", normalized=True, support=[1])


CJK_LABELS = ["B-人名", "I-人名", "B-地名", "O", "ダーバン"]


def has_font_for(text: str) -> bool:
    return not fonts_for([text])[1]


def test_latin_labels_use_dejavu_alone():
    assert fonts_for(["B-person", "Müller", "row-normalised"]) == (["DejaVu Sans"], set())


def test_missing_glyphs_warn_once_not_per_glyph(tmp_path, monkeypatch):
    # Without a CJK font matplotlib warned once per glyph and figure (272 warnings in the issue).
    monkeypatch.setattr(plots, "_installed_fonts", lambda: [("DejaVu Sans", plots.font_manager.findfont("DejaVu Sans"))])
    monkeypatch.setattr(plots, "_missing_glyphs_warned", False)
    with pytest.warns(UserWarning) as caught:
        for index in range(3):
            plot_heatmap(np.eye(5), CJK_LABELS, tmp_path / f"{index}.png", "テスト", normalized=True, support=[1] * 5)
            plot_curves({"損失": [(0, 1.0), (1, 0.5)]}, tmp_path / f"c{index}.png", "step", "loss", "損失")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "no installed font has glyphs" in messages[0] and "fonts-noto-cjk" in messages[0]


@pytest.mark.skipif(not has_font_for("".join(CJK_LABELS)), reason="no CJK font installed (apt-get install fonts-noto-cjk)")
def test_cjk_labels_get_a_cjk_font_and_no_warning(tmp_path, recwarn):
    families, missing = fonts_for(CJK_LABELS)
    assert not missing and families[0] == "DejaVu Sans" and len(families) >= 2
    plot_heatmap(np.eye(5), CJK_LABELS, tmp_path / "cjk.png", "テスト · 人名", normalized=True, support=[3] * 5)
    assert not [w for w in recwarn if "Glyph" in str(w.message) or "glyphs" in str(w.message)]
