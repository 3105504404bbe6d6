"""PNG figures for reports: confusion heatmaps and loss curves.

Files are written atomically (temp file in the same directory, then ``os.replace``) so a run
killed mid-write, or a report viewer polling the directory, never sees a truncated image.

Text is drawn in fonts that have its glyphs: matplotlib's default, DejaVu Sans, has none for
CJK, Devanagari or Thai, so labels in those scripts would be boxes. :func:`fonts_for` picks,
from the fonts installed on the system, a fallback list that covers every character of the
figure's text (preferring :data:`PREFERRED_FONTS`, in order); matplotlib then takes each glyph
from the first font of the list that has it. When no installed font has some glyph, one
warning per process says which characters and how to get a font (Debian/Ubuntu:
``apt-get install fonts-noto-cjk fonts-noto-core``), instead of matplotlib's one warning per
glyph and figure. Matplotlib draws glyphs one by one, without shaping, so Arabic letters are
shown in their isolated forms, left to right, and Indic conjuncts are not formed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import textwrap
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # training runs headless; must precede the pyplot import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.ft2font import FT2Font  # noqa: E402

from nlu.errors import DataError  # noqa: E402
from nlu.files import atomic_path  # noqa: E402

PREFERRED_FONTS = (
    "DejaVu Sans", "Noto Sans", "Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
    "Noto Sans Devanagari", "Noto Sans Arabic", "Noto Naskh Arabic", "Noto Sans Hebrew", "Noto Sans Thai",
    "Noto Sans Bengali", "Noto Sans Tamil", "Droid Sans Fallback", "WenQuanYi Zen Hei", "IPAGothic",
)
"""Tried first, in this order; any other installed font is tried after them (by name) for the
characters they lack. DejaVu Sans (shipped with matplotlib) leads so Latin text looks as before."""

_missing_glyphs_warned = False


@functools.lru_cache(maxsize=None)
def _charmap(path: str) -> frozenset[int]:
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError):  # an unreadable font file on the system is skipped, not fatal
        return frozenset()


def _installed_fonts() -> list[tuple[str, str]]:
    """(family, file) of every installed font, the preferred families first, then the rest by name."""
    rank = {name: index for index, name in enumerate(PREFERRED_FONTS)}
    # matplotlib's "Last Resort" font maps every code point to a placeholder box: no coverage at all.
    fonts = {(entry.name, entry.fname) for entry in font_manager.fontManager.ttflist
             if not entry.name.startswith("Last Resort")}
    return sorted(fonts, key=lambda font: (rank.get(font[0], len(rank)), font[0], font[1]))


@functools.lru_cache(maxsize=1)
def _add_new_system_fonts() -> int:
    """Register system fonts installed after matplotlib built its font cache (it never rescans,
    so fonts-noto-cjk installed later would stay invisible); once per process. Returns how many."""
    known = {entry.fname for entry in font_manager.fontManager.ttflist}
    added = 0
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                font_manager.fontManager.addfont(path)
                added += 1
            except (OSError, RuntimeError, ValueError):  # a font file matplotlib cannot read is skipped
                continue
    return added


def fonts_for(texts: Iterable[str]) -> tuple[list[str], set[str]]:
    """The font families to draw ``texts`` in (a fallback list, DejaVu Sans first) and the
    characters that no installed font has. A family joins the list only if it covers a
    character the families before it lack."""
    texts = list(texts)  # read twice when new system fonts are registered
    needed = {ord(char) for text in texts for char in text if not char.isspace()}
    families: list[str] = []
    for family, path in _installed_fonts():
        covered = needed & _charmap(path)
        if covered and family not in families:
            families.append(family)
        needed -= covered
        if not needed:
            break
    if needed and _add_new_system_fonts.cache_info().currsize == 0 and _add_new_system_fonts():
        return fonts_for(texts)
    return families or ["DejaVu Sans"], {chr(code) for code in needed}


@contextlib.contextmanager
def _text_fonts(texts: Iterable[str]) -> Iterator[None]:
    """Draw and save inside this block with fonts covering ``texts``; glyphs no font has are
    reported once per process (see the module docstring), never once per glyph."""
    global _missing_glyphs_warned
    families, missing = fonts_for(texts)
    if missing and not _missing_glyphs_warned:
        _missing_glyphs_warned = True
        shown = "".join(sorted(missing)[:20])
        warnings.warn(f"no installed font has glyphs for {len(missing)} character(s) of the figure labels "
                      f"({shown!r}); they are drawn as boxes (the CSVs are exact). Install fonts that have them, "
                      f"e.g. apt-get install fonts-noto-cjk fonts-noto-core", stacklevel=3)
    # An explicit family list (not the generic "sans-serif", which resolves to one font) is what
    # makes matplotlib fall back glyph by glyph.
    with plt.rc_context({"font.family": families}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        yield


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
    support: Sequence[int] | None = None,
) -> Path:
    """Confusion heatmap, rows = true label, columns = predicted label, the value printed in every
    cell that is not zero.

    Zero cells stay blank: a confusion matrix of many labels is mostly zeros, which read faster as
    empty than as a grid of "0", and each printed value is a text layout (about 1 ms): the 21
    IOB2 labels of WNUT-16 spent 2 s a figure on them. The CSVs beside the figure hold every value.
    Sized for 7-25 labels: the figure grows with the label count so every cell keeps the same
    size (about 0.55 inch) and the printed values stay legible at one fixed font size;
    normalised matrices print two decimals. ``support`` (the true count of each row) is shown
    in the row labels as ``label (n=12)``, so a normalised row resting on one example does not
    read like a large class.
    """
    matrix = np.asarray(matrix)
    size = len(labels)
    if matrix.shape != (size, size):
        raise DataError(f"matrix of shape {matrix.shape} does not match {size} labels")
    if support is not None and len(support) != size:
        raise DataError(f"{len(support)} support counts for {size} labels")
    rows = list(labels) if support is None else [f"{label} (n={int(count)})" for label, count in zip(labels, support)]
    with _text_fonts([title, *labels, *rows]):
        side = max(5.0, 0.55 * size + 2.5)
        figure, axes = plt.subplots(figsize=(side + 1.5, side))
        top = float(matrix.max()) if matrix.size and matrix.max() > 0 else 1.0
        image = axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=top)
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        axes.set_xticks(range(size), labels=labels, rotation=45, ha="right", rotation_mode="anchor")
        axes.set_yticks(range(size), labels=rows)
        axes.set_xlabel("Predicted")
        axes.set_ylabel("True" if support is None else "True (n = examples in the row)")
        axes.set_title(textwrap.fill(title, width=int((side + 1.5) * 9)))  # a long split name wraps, never cut
        for row, col in zip(*np.nonzero(matrix)):
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
    with _text_fonts([title, xlabel, ylabel, *series]):
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


def plot_bars(values: dict[str, Sequence[float]], path: str | os.PathLike, ylabel: str, title: str) -> Path:
    """One bar per name with its error bar: ``values`` maps a name to (mean, std)."""
    if not values:
        raise DataError(f"nothing to plot for {title!r}")
    names = list(values)
    with _text_fonts([title, ylabel, *names]):
        figure, axes = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 4.5))
        means, stds = zip(*(values[name] for name in names))
        axes.bar(range(len(names)), means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
        axes.set_xticks(range(len(names)), labels=names, rotation=30, ha="right", rotation_mode="anchor")
        axes.set_ylabel(ylabel)
        axes.set_title(title)
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        return _save(figure, path)
