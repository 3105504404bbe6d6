"""Markdown reports written beside every run: what was run, what came out, where the files are."""

from __future__ import annotations

import json
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


def settings_block(settings) -> str:
    return "```yaml\n" + yaml.safe_dump(settings.to_dict(), sort_keys=False) + "```\n"


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
    lines = [f"# {title}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |"
              for key, value in summary.items() if not isinstance(value, (list, dict))]
    lines += ["", "![training loss](train_loss.png) ![dev metric](dev_metric.png)", "",
              "Test-set tables, confusion matrices (CSV + PNG) and predictions: [test/report.md](test/report.md)", "",
              "## Settings", "", settings_block(settings)]
    write_text_atomic(output_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    report = output_dir / "report.md"
    write_text_atomic(report, "\n".join(lines))
    return report
