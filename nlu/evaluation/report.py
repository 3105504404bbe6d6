"""Markdown reports written beside every run: what was run, what came out, where the files are."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from nlu.evaluation.plots import plot_curves
from nlu.files import write_text_atomic


def read_log(output_dir: Path) -> list[dict[str, Any]]:
    path = Path(output_dir) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def loss_curves(output_dir: Path, key: str, path: Path, title: str) -> Path:
    """Training and held-out ``key`` against optimizer steps, from the run's JSONL log."""
    log = read_log(output_dir)
    series = {
        f"{split} {key}": [(record["step"], record[key]) for record in log if record["split"] == split and key in record]
        for split in ("train", "eval")
    }
    plot_curves({name: points for name, points in series.items() if points}, path,
                xlabel="optimizer step", ylabel=key, title=title)
    return path


def split_composition(split: str, examples: int, class_counts: Mapping[str, int], known: Sequence[str],
                      unit: str = "examples") -> dict[str, Any]:
    """What an evaluated split holds: its size, its count per class (in the model's class order)
    and the model's classes it lacks — so a reader sees that a macro figure rests on 7 of 10
    classes, or a recall on one example. ``class_counts`` are gold counts (entities per type
    for NER); ``unit`` names what ``examples`` counts."""
    present = {label: int(class_counts[label]) for label in known if class_counts.get(label)}
    unknown = sorted(set(class_counts) - set(known))
    present.update({label: int(class_counts[label]) for label in unknown})
    return {"split": split, "size": int(examples), "unit": unit, "class_counts": present,
            "classes": f"{len(present)} of {len(known)}", "missing_classes": [label for label in known if label not in present]}


def confusion_links(stem: str, title: str) -> str:
    """One line linking the four confusion-matrix PNGs that save_confusion_reports writes for STEM."""
    return (f"{title}: [raw]({stem}_confusion_raw.png) · [by row = recall]({stem}_confusion_true.png) · "
            f"[by column = precision]({stem}_confusion_pred.png) · [over all]({stem}_confusion_all.png) "
            "(CSV beside each PNG).")


def composition_markdown(compositions: Sequence[Mapping[str, Any]]) -> str:
    """One table row per split: size, classes present (of the model's), count per class, missing classes."""
    lines = [f"| split | {compositions[0]['unit']} | classes | count per class | missing classes |", "|---|---:|---:|---|---|"]
    for entry in compositions:
        counts = ", ".join(f"{label} {count}" for label, count in entry["class_counts"].items())
        missing = ", ".join(entry["missing_classes"]) or "none"
        lines.append(f"| {entry['split']} | {entry['size']:,} | {entry['classes']} | {counts} | {missing} |")
    return "\n".join(lines) + "\n"


def split_label(split: str, sources: Sequence[str | None]) -> str:
    """How titles and reports name an evaluated split: "test (data/test.csv)"."""
    files = sorted({str(source) for source in sources if source is not None})
    return f"{split} ({', '.join(files)})" if files else split


def collapse_warning(dev_messages: Sequence[str | None], test_message: str | None = None) -> str | None:
    """The run summary's line when the model ended with predictions collapsed to one label (see
    nlu.evaluation.metrics.prediction_collapse): at the last dev evaluation, or on test (the
    selected model). Early evaluations predicting only O are normal and not reported alone."""
    parts = []
    if dev_messages and dev_messages[-1]:
        collapsed = sum(1 for message in dev_messages if message)
        parts.append(f"on dev at the last evaluation ({collapsed} of {len(dev_messages)} in all): {dev_messages[-1]}")
    if test_message:
        parts.append(f"on test: {test_message}")
    if not parts:
        return None
    return ("; ".join(parts) + " — the scores are a baseline's; the learning rate may not suit the model and "
            "data size, or the run is too short (nlu.recipes, training.learning_rate=auto)")


def seed_spread(*runs: Sequence[float]) -> float | None:
    """The seed noise of a comparison: the largest standard deviation (n-1) over seeds among the
    runs compared; None when no run has two seeds to measure it."""
    spreads = [statistics.stdev(values) for values in runs if len(values) >= 2]
    return max(spreads) if spreads else None


def ahead_by(name_a: str, score_a: float, name_b: str, score_b: float, noise: float | None,
             digits: int = 4) -> str:
    """A headline comparison phrased from the numbers: "A ahead by 0.0009 (within seed noise
    ±0.0120)". A difference no larger than ``noise`` (e.g. :func:`seed_spread`) is within it;
    without a noise estimate the phrase says it was not measured, never "beats"."""
    difference = score_a - score_b
    if difference == 0:
        lead = f"{name_a} and {name_b} tied at {score_a:.{digits}f}"
    else:
        leader, trailer = (name_a, name_b) if difference > 0 else (name_b, name_a)
        lead = f"{leader} ahead of {trailer} by {abs(difference):.{digits}f}"
    if noise is None:
        return f"{lead} (seed noise not measured: a single seed)"
    side = "within" if abs(difference) <= noise else "outside"
    return f"{lead} ({side} seed noise ±{noise:.{digits}f})"


def settings_block(settings) -> str:
    """settings.yaml as it is; a PAN-X run's train, dev and test keep defaults it never read, said below."""
    panx = settings.data.get("panx_lang")
    source = f"`{settings.data['local_dir']}`" if settings.data.get("local_dir") else f"the hub (PAN-X.{panx})"
    return "```yaml\n" + yaml.safe_dump(settings.to_dict(), sort_keys=False) + "```\n" + (
        f"\nWith data.panx_lang, data.train, dev and test are not read: the splits came from {source}.\n" if panx else "")


def write_pretraining_report(output_dir: Path, settings, summary: dict[str, Any]) -> Path:
    output_dir = Path(output_dir)
    curve = loss_curves(output_dir, "mlm_loss", output_dir / "pretraining_loss.png", "MLM loss")
    final = summary["final_eval"]
    train, heldout = summary["corpus"]["train"], summary["corpus"]["heldout"]
    lines = [
        "# Pretraining summary",
        "",
        f"- model: {summary['parameters']:,} parameters, saved in `{summary['model_dir']}`",
        f"- corpus: {train['documents']:,} documents, {train['sentences']:,} sentences, {train['words']:,} words, "
        f"{train['tokens']:,} WordPiece tokens → {train['examples']:,} NSP pairs "
        f"(held out: {heldout['documents']:,} documents, {heldout['examples']:,} pairs)",
        f"- {summary['steps']:,} optimizer steps on {summary['processes']} process(es) in "
        f"{summary['train_seconds']:.0f} s: {summary['tokens_per_second']:,.0f} tokens/s",
        "",
        "| held-out metric | value |",
        "|---|---|",
        f"| MLM loss | {final.get('mlm_loss', float('nan')):.3f} |",
        f"| unigram baseline MLM loss (no context) | {summary['unigram_mlm_loss']:.3f} |",
        f"| MLM accuracy | {final.get('mlm_accuracy', float('nan')):.3f} |",
        f"| NSP accuracy | {final.get('nsp_accuracy', float('nan')):.3f} |",
        "",
        f"![MLM loss]({curve.name})",
        "",
        "## Settings",
        "",
        settings_block(settings),
    ]
    report = output_dir / "pretraining.md"
    write_text_atomic(report, "\n".join(lines))
    write_text_atomic(output_dir / "pretraining.json", json.dumps(summary, indent=2))
    return report


def write_run_report(output_dir: Path, settings, summary: dict[str, Any], title: str,
                     curve_metric: str) -> Path:
    """The run folder's report.md: headline figures, learning curves, test report, settings."""
    loss_curves(output_dir, "loss", output_dir / "train_loss.png", f"{title}: training loss")
    loss_curves(output_dir, curve_metric, output_dir / "dev_metric.png", f"{title}: dev {curve_metric}")
    lines = [f"# {title}", ""]
    if summary.get("warning"):
        lines += [f"**Warning: {summary['warning']}.**", ""]
    lines += ["| figure | value |", "|---|---|"]
    lines += [f"| {key} | {value:.4f} |" if isinstance(value, float) else
              f"| {key} | {', '.join(map(str, value)) if isinstance(value, tuple) else value} |"  # labels: a, b, c
              for key, value in summary.items()
              if key != "warning" and value is not None and not isinstance(value, (list, dict))]
    if summary.get("composition"):
        lines += ["", "Evaluated splits (classes counted against the training classes):", "",
                  composition_markdown(summary["composition"])]
    lines += ["", "![training loss](train_loss.png) ![dev metric](dev_metric.png)", "",
              "Test-set tables, confusion matrices (CSV + PNG) and predictions: [test/report.md](test/report.md)", "",
              "## Settings", "", settings_block(settings)]
    write_text_atomic(output_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    report = output_dir / "report.md"
    write_text_atomic(report, "\n".join(lines))
    return report
