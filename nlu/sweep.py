"""``nlu sweep``: one task file, a grid of overrides (or named rows) and seeds, one honest table.

Each (row, seed) is an ordinary run through ``nlu.runs.run`` in its own folder, so a finished run
is reused and an interrupted one resumes. The table gives mean ± std over seeds for every figure
the runs report, per-class recall of the minority classes (classification) or F1 per entity type
(NER), and for every row after the first a paired bootstrap interval of its difference to the
first row: test examples are resampled together for both rows, so the interval reflects the test
set's size as well as the seeds. The report is rendered from its JSON by ``render_sweep``, so the
figures in Markdown and JSON cannot drift apart.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlu.errors import ConfigError
from nlu.evaluation.confusion import entity_spans
from nlu.evaluation.plots import plot_bars
from nlu.files import write_text_atomic
from nlu.reporting import cell, command_line, mean_std
from nlu.runs import run
from nlu.settings import load_settings, read_yaml_file

BOOTSTRAP_SAMPLES = 1000
HEADLINE = {"ner": "test_f1", "classify": "test_macro_f1"}


@dataclass
class Sweep:
    name: str
    config: str
    """The task file every run starts from."""
    rows: dict[str, dict[str, Any]]
    """Row name → overrides; the first row is the reference the others are compared with."""
    seeds: list[int] = field(default_factory=lambda: [42])
    overrides: dict[str, Any] = field(default_factory=dict)
    """Applied to every row (e.g. a shorter budget)."""


def grid_rows(grid: list[str]) -> dict[str, dict[str, Any]]:
    """``["data.loss=ce,focal", "training.learning_rate=1e-3,3e-4"]`` → the product of the values,
    one row per combination, named by the values that vary."""
    axes = []
    for item in grid:
        key, equals, values = item.partition("=")
        if not equals or not key or not values:
            raise ConfigError(f"--grid {item!r} must look like section.key=value1,value2")
        axes.append([(key, value) for value in values.split(",")])
    rows = {}
    for combination in itertools.product(*axes):
        name = ",".join(f"{key.rpartition('.')[2]}={value}" for key, value in combination)
        rows[name] = dict(combination)
    return rows


def load_sweep(path: str | Path) -> Sweep:
    """A sweep file: ``task: sweep``, ``config`` (a task file), ``rows`` (name → overrides) or
    ``grid`` (key → list of values), optional ``seeds``, ``overrides`` and ``name``."""
    path = Path(path)
    values = read_yaml_file(path, "sweep file")
    if values.get("task") != "sweep" or "config" not in values:
        raise ConfigError(f"{path}: a sweep file has 'task: sweep' and 'config: <task file>'")
    rows = values.get("rows") or grid_rows([f"{key}={','.join(map(str, options))}"
                                            for key, options in (values.get("grid") or {}).items()])
    if not rows:
        raise ConfigError(f"{path}: give rows (name: {{key: value}}) or grid (key: [values])")
    unknown = sorted(set(values) - {"task", "config", "rows", "grid", "seeds", "overrides", "name"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}")
    return Sweep(name=values.get("name", path.stem), config=values["config"], rows=rows,
                 seeds=[int(seed) for seed in values.get("seeds", [42])], overrides=values.get("overrides") or {})


def run_sweep(sweep: Sweep, task: str, runs_dir: Path, force: bool = False) -> dict[str, Any]:
    """Run (or reuse) every row × seed and gather the figures the report is rendered from."""
    root = Path(runs_dir) / sweep.name
    results: dict[str, Any] = {"name": sweep.name, "task": task, "config": sweep.config, "seeds": sweep.seeds,
                               "overrides": sweep.overrides, "command": command_line(), "rows": {}}
    for row, overrides in sweep.rows.items():
        runs = []
        for seed in sweep.seeds:
            given = {**sweep.overrides, **overrides, "training.seed": seed,
                     "training.output_dir": str(root / slug(row) / f"seed-{seed}")}
            settings = load_settings(sweep.config, [f"{key}={json.dumps(value) if not isinstance(value, str) else value}"
                                                    for key, value in given.items()], task=task)
            record = run(settings, force=force)
            runs.append({"seed": seed, "output_dir": str(record.output_dir), "reused": record.reused,
                         "wall_seconds": record.wall_seconds, "figures": run_figures(record.summary, record.output_dir, task)})
        results["rows"][row] = {"overrides": overrides, "runs": runs}
        results["machine"] = record.machine
    results["statistics"] = statistics(results)
    results["bootstrap"] = bootstrap_against_first(results, task)
    return results


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name)


def run_figures(summary: dict[str, Any], output_dir: Path, task: str) -> dict[str, float]:
    """The run's scalar figures, plus per-type F1 for NER (from its test metrics)."""
    figures = {key: float(value) for key, value in summary.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    metrics = Path(output_dir) / "test" / "metrics.json"
    if task == "ner" and metrics.exists():
        per_class = json.loads(metrics.read_text())["entity_strict"]["per_class"]
        figures.update({f"test_f1[{name}]": row["f1"] for name, row in per_class.items()})
    return figures


def statistics(results: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Row → figure → mean and sample std over the seeds that report it (nlu.reporting.mean_std)."""
    return {row: {key: mean_std(run_["figures"].get(key) for run_ in entry["runs"])
                  for key in sorted({key for run_ in entry["runs"] for key in run_["figures"]})}
            for row, entry in results["rows"].items()}


def test_outcomes(output_dir: Path, task: str) -> tuple[np.ndarray, list[str]] | None:
    """Per test example, what its share of the headline metric depends on.

    Classification: (gold, predicted) label pairs → macro-F1 of any resample. NER: per sentence
    (true positives, predicted entities, gold entities) → micro entity F1 of any resample."""
    test = Path(output_dir) / "test"
    if task == "classify" and (test / "predictions.csv").exists():
        with open(test / "predictions.csv", newline="", encoding="utf-8") as handle:
            rows = [(row["label"], row["predicted"]) for row in csv.DictReader(handle)]
        labels = sorted({label for pair in rows for label in pair})
        index = {label: i for i, label in enumerate(labels)}
        return np.array([[index[gold], index[guess]] for gold, guess in rows]), labels
    if task == "ner" and (test / "predictions.conll").exists():
        counts = []
        for block in (test / "predictions.conll").read_text(encoding="utf-8").split("\n\n"):
            lines = [line.split("\t") for line in block.splitlines() if line]
            if not lines:
                continue
            gold = set(entity_spans([line[-2] for line in lines]))
            guess = set(entity_spans([line[-1] for line in lines]))
            counts.append([len(gold & guess), len(guess), len(gold)])
        return np.array(counts), []
    return None


def resampled_metric(outcomes: np.ndarray, samples: np.ndarray, task: str, classes: int) -> np.ndarray:
    """The headline metric of each resample (rows of ``samples`` index the test examples)."""
    if task == "ner":
        totals = outcomes[samples].sum(axis=1)  # (resamples, 3)
        return np.where(totals[:, 1] + totals[:, 2] > 0, 2 * totals[:, 0] / np.maximum(totals[:, 1] + totals[:, 2], 1), 0.0)
    gold, guess = outcomes[samples, 0], outcomes[samples, 1]
    scores = []
    for label in range(classes):
        tp = ((gold == label) & (guess == label)).sum(axis=1)
        support, predicted = (gold == label).sum(axis=1), (guess == label).sum(axis=1)
        present = (support + predicted) > 0
        scores.append((np.where(present, 2 * tp / np.maximum(support + predicted, 1), 0.0), present))
    f1 = np.stack([score for score, _ in scores])
    present = np.stack([flag for _, flag in scores])
    return (f1 * present).sum(axis=0) / np.maximum(present.sum(axis=0), 1)


def bootstrap_against_first(results: dict[str, Any], task: str, samples: int = BOOTSTRAP_SAMPLES,
                            seed: int = 0) -> dict[str, Any]:
    """95% interval of (row − first row) on the headline metric, averaged over the seeds both rows
    ran, with the same resampled test examples for both rows and every seed."""
    rows = list(results["rows"])
    if task not in HEADLINE or len(rows) < 2:
        return {}
    outcomes = {row: {run_["seed"]: test_outcomes(Path(run_["output_dir"]), task)
                      for run_ in results["rows"][row]["runs"]} for row in rows}
    reference = outcomes[rows[0]]
    first = next((value for value in reference.values() if value is not None), None)
    if first is None:
        return {}
    labels = sorted({label for row in outcomes.values() for value in row.values() if value for label in value[1]})
    size = len(first[0])
    draws = np.random.default_rng(seed).integers(0, size, size=(samples, size))
    intervals = {}
    for row in rows[1:]:
        seeds = [s for s in outcomes[row] if outcomes[row][s] is not None and reference.get(s) is not None]
        if not seeds or any(len(outcomes[row][s][0]) != size for s in seeds):
            continue
        differences = np.mean([resampled_metric(relabel(outcomes[row][s], labels), draws, task, len(labels))
                               - resampled_metric(relabel(reference[s], labels), draws, task, len(labels))
                               for s in seeds], axis=0)
        low, high = np.percentile(differences, [2.5, 97.5])
        intervals[row] = {"metric": HEADLINE[task], "mean_difference": float(differences.mean()),
                          "low": float(low), "high": float(high), "seeds": seeds, "test_examples": size}
    return intervals


def relabel(outcome: tuple[np.ndarray, list[str]], labels: list[str]) -> np.ndarray:
    """Classification label indices into the sweep-wide label order (a run may not predict every class)."""
    values, own = outcome
    if not own:
        return values
    mapping = np.array([labels.index(label) for label in own])
    return mapping[values]


def minority_keys(results: dict[str, Any]) -> list[str]:
    """Per-class figures worth a column: recall of classes rarer than average (classification) or
    F1 per entity type (NER), as the runs report them."""
    first = next(iter(results["statistics"].values()))
    if results["task"] == "ner":
        return sorted(key for key in first if key.startswith("test_f1["))
    recalls = sorted(key for key in first if key.startswith("test_recall["))
    supports = {key: (first.get(key.replace("test_recall[", "test_support[")) or {}).get("mean") for key in recalls}
    known = [value for value in supports.values() if value is not None]
    if not known:
        return recalls
    return [key for key in recalls if supports[key] is None or supports[key] < np.mean(known)]


def render_sweep(results: dict[str, Any]) -> str:
    """The sweep report in Markdown, from the JSON alone."""
    stats = results["statistics"]
    headline = HEADLINE.get(results["task"], next(iter(next(iter(stats.values())))))
    columns = [headline, *minority_keys(results), "train_seconds"]
    rows = list(stats)
    seeds = ", ".join(map(str, results["seeds"]))
    lines = [f"# Sweep: {results['name']}", "",
             f"Made by `{results['command']}` from `{results['config']}`; seeds {seeds}; "
             f"mean ± std over seeds.", "",
             "| row | " + " | ".join(columns) + " | Δ vs first row (95% paired bootstrap) |",
             "|---|" + "---|" * (len(columns) + 1)]
    for row in rows:
        cells = [cell(stats[row].get(key)) for key in columns]
        interval = results["bootstrap"].get(row)
        versus = "reference" if row == rows[0] else (
            f"{interval['mean_difference']:+.4f} [{interval['low']:+.4f}, {interval['high']:+.4f}] "
            f"({'outside' if interval['low'] > 0 or interval['high'] < 0 else 'within'} noise)" if interval else "n/a")
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {versus} |")
    lines += ["", "Rows (overrides on top of the task file"
              + (f" and {json.dumps(results['overrides'])}" if results["overrides"] else "") + "):", ""]
    lines += [f"- **{row}**: `{json.dumps(results['rows'][row]['overrides'])}`" for row in rows]
    machine = results.get("machine", {})
    lines += ["", f"Host: {machine.get('cpu')} ({', '.join(machine.get('cpu_flags', []))}), "
              f"{machine.get('torch_threads')} torch threads, load {machine.get('load_average')}, torch {machine.get('torch')}.",
              "", f"![{headline}](sweep.png)", ""]
    return "\n".join(lines)


def write_sweep(results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "sweep.json", json.dumps(results, indent=2))
    headline = HEADLINE.get(results["task"])
    if headline:
        stats = results["statistics"]
        plot_bars({row: (stats[row][headline]["mean"], stats[row][headline]["std"] or 0.0) for row in stats
                   if headline in stats[row]}, out_dir / "sweep.png",
                  ylabel=headline, title=f"{results['name']}: {headline} (mean ± std over seeds)")
    report = out_dir / "sweep.md"
    write_text_atomic(report, render_sweep(results))
    return report
