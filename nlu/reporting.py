"""What every study report shares (ablations, comparisons, benchmarks, sweeps): the command that
made it, the machine it ran on, mean ± std over seeds, Markdown tables, and the rule that a
report's Markdown is rendered from its JSON by one function, so a figure is typed once and a
report can be re-made from its JSON after a change of layout. (One run's own report.md is
nlu.evaluation.report's.)"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


from nlu.files import write_text_atomic
from nlu.machine import describe_machine

Render = Callable[[dict[str, Any]], str]


def command_line(argv: Sequence[str] | None = None, root: Path | None = None) -> str:
    """This process's command as a reader would retype it from ``root`` (default: the current
    folder): ``python scripts/x.py ...`` for a script, ``nlu ...`` for nlu's command line however
    it was started (``python -m nlu.cli``, a launcher's worker: then with the number of processes),
    with OMP_NUM_THREADS when it was set, since it changes the speed figures."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name
    if Path(argv[0]).parts[-2:] == ("nlu", "cli.py"):
        program = "nlu"
    elif argv[0].endswith(".py"):
        program = os.path.relpath(argv[0], root or Path.cwd())
    prefix = "python " if program.endswith(".py") else ""
    threads, processes = os.environ.get("OMP_NUM_THREADS"), int(os.environ.get("WORLD_SIZE") or 1)
    return ((f"OMP_NUM_THREADS={threads} " if threads else "") + prefix + shlex.join([program, *argv[1:]])
            + (f"  # in {processes} processes (torchrun / accelerate launch)" if processes > 1 else ""))


def machine(*packages: str) -> dict[str, Any]:
    """nlu.machine's description, plus the versions of ``packages``."""
    return {**describe_machine(), "packages": {package: _version(package) for package in packages}}


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine_line(info: dict[str, Any]) -> str:
    """One sentence for a report's header: where and with what the figures were measured. A
    description recorded in another shape (reports made before nlu.machine) is listed as it is."""
    if "cpu_flags" not in info:
        return ", ".join(f"{key} {value}" for key, value in info.items() if value not in (None, ""))
    extras = ", ".join(f"{name} {number}" for name, number in info.get("packages", {}).items())
    return (f"{info['cpu']} ({', '.join(info['cpu_flags']) or 'no listed vector flags'}), {info['cores']} cores, "
            f"{info['gpu'] or 'no GPU'}; torch {info['torch']} at {info['torch_threads']} thread(s)"
            f" (OMP_NUM_THREADS={info.get('OMP_NUM_THREADS') or 'unset'}), Python {info['python']}"
            + (f", {extras}" if extras else "") + f"; load average {', '.join(map(str, info['load_average']))}")


def mean_std(values: Iterable[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds; ``std`` is None for a single value (no
    spread to show) and both are None when there is no value. Missing values (None) are left out."""
    kept = [float(value) for value in values if value is not None]
    return {"mean": statistics.mean(kept) if kept else None,
            "std": statistics.stdev(kept) if len(kept) > 1 else None, "values": kept}


def paired_difference(values: Iterable[float], references: Iterable[float], confidence: float = 0.95
                      ) -> dict[str, Any] | None:
    """``values`` minus ``references`` pair by pair (the same seed: same initial weights, data order
    and masks), with their mean and its Student-t interval at CONFIDENCE; None when there is no pair.
    No interval for a single pair, nor for pairs that all differ alike: zero spread measures no
    noise (a small test set's coarse figures, or seeds that change nothing), so it judges nothing.
    The t quantile, not 2: with three seeds the half-width is 4.3 standard errors, so a gap found on
    few seeds must be large to count."""
    from scipy.stats import t

    differences = [value - reference for value, reference in zip(values, references, strict=True)]
    if not differences:
        return None
    spread, mean, count = mean_std(differences)["std"], statistics.mean(differences), len(differences)
    unmeasured = spread is None or spread <= 1e-12 * max(1.0, abs(mean))  # equal but for float rounding
    half = None if unmeasured else float(t.ppf((1 + confidence) / 2, count - 1)) * spread / count ** 0.5
    return {"values": differences, "mean_difference": mean, "half_width": half, "confidence": confidence,
            "low": None if half is None else mean - half, "high": None if half is None else mean + half}


def cell(entry: dict[str, Any] | None, digits: int = 4) -> str:
    """A mean_std entry as a table cell: "0.1234 ± 0.0056", "0.1234" for one seed, "—" for none."""
    if entry is None or entry.get("mean") is None:
        return "—"
    text = f"{entry['mean']:.{digits}f}"
    return text + (f" ± {entry['std']:.{digits}f}" if entry.get("std") is not None else "")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> list[str]:
    """Markdown table lines; ``align`` gives one letter per column (l/r), default first left, rest right."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = "|" + "|".join("---:" if side == "r" else "---" for side in align) + "|"
    return ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def write_report(stem: Path, result: dict[str, Any], render: Render) -> Path:
    """``stem``.json holds every number; ``stem``.md is ``render`` of exactly that JSON."""
    stem = Path(stem)
    text = json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n"
    write_text_atomic(stem.with_suffix(".json"), text)
    return rerender(stem, render)


def rerender(stem: Path, render: Render) -> Path:
    """``stem``.md again from ``stem``.json (after a change to the report's layout): no run repeated."""
    stem = Path(stem)
    markdown = stem.with_suffix(".md")
    write_text_atomic(markdown, render(json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))))
    return markdown
