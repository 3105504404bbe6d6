#!/usr/bin/env python3
"""nlu against transformers' Trainer on a real pretrained BERT: same work, accuracy and time (issue #11).

    python scripts/vs_transformers.py                         # all-MiniLM-L6-v2 (fetched once, cached), 3 seeds
    python scripts/vs_transformers.py --checkpoint path/to/bert --seeds 1 --tasks ner
    python scripts/vs_transformers.py --quick --checkpoint tiny-bert --out /tmp/r   # one seed, a few steps
    python scripts/vs_transformers.py --render reports/vs_transformers.json [--rerun-paired]

For each task and seed the checkpoint is fine-tuned twice on the same files, with its own
tokenizer and the same max length, batch size, learning rate, linear schedule with warm-up,
AdamW settings, epochs and seed: by nlu (``nlu.runs.run`` of tasks/wnut16_ner.yaml or
tasks/rotten_tomatoes.yaml with ``init=<checkpoint>``, what ``nlu finetune`` runs), and by the
Trainer (``AutoModelForTokenClassification`` with labels on each word's first sub-token, or
``AutoModelForSequenceClassification``). Both evaluate dev once per epoch and keep the best model;
both are scored on test by nlu.evaluation.metrics (seqeval strict IOB2 on word-level tags;
scikit-learn macro-F1 and per-class recall), and nlu's figure is checked against its own report.

Every run is a fresh subprocess, so its peak resident memory is its own. Training time is each
side's training clock: nlu's loop (first step to last, per-epoch dev evaluation and checkpoints
included), the Trainer's construction and ``train()``. Runs alternate between the frameworks seed
by seed, so load from other processes hits both alike. A second block switches on nlu's own
improvements (IMPROVED) against the same Trainer runs; a paired step benchmark alternates the
two models' training steps on the same NER batches in one process. Writes OUT/vs_transformers.{md,json}.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nlu.benchmark import Clock, alternate, operator_shares, operator_times, training_step  # noqa: E402
from nlu.data.classification import read_table  # noqa: E402
from nlu.data.ner import encode_ner, label_list, read_ner_file  # noqa: E402
from nlu.data.subsets import write_slices  # noqa: E402
from nlu.reference import classification_figures, ner_figures, recipe_overrides, trainer_finetune  # noqa: E402
from nlu.reporting import (  # noqa: E402
    cell, command_line, machine, machine_line, mean_std, measured_run, measured_worker, table, write_report)
from nlu.runs import run  # noqa: E402
from nlu.sources import model_directory  # noqa: E402
from nlu.settings import load_settings  # noqa: E402

TASK_FILES = {"ner": ROOT / "tasks" / "wnut16_ner.yaml", "classify": ROOT / "tasks" / "rotten_tomatoes.yaml"}
MINORITY = "plot"
# About 30 minutes for the whole report on 2 CPU cores. *_limit: a slice of the split (None: all of it).
BUDGET = {
    "ner": {"max_length": 128, "batch_size": 32, "learning_rate": 1e-4, "warmup_ratio": 0.1, "epochs": 3,
            "eval_batch_size": 64, "train_limit": None, "dev_limit": None, "test_limit": None},
    "classify": {"max_length": 64, "batch_size": 32, "learning_rate": 2e-4, "warmup_ratio": 0.1, "epochs": 1,
                 "eval_batch_size": 64, "train_limit": 1500, "dev_limit": None, "test_limit": None},
}
QUICK = {task: {**budget, "batch_size": 16, "epochs": 1, "train_limit": 48, "dev_limit": 24, "test_limit": 24}
         for task, budget in BUDGET.items()}
# nlu's own improvements per task: options that do better than its defaults. NER: none beyond
# the speed work that is on by default (see the report's note).
IMPROVED = {"ner": [], "classify": ["data.loss=focal"]}
SUBSET_SEED = 13
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}  # the profiler's matrix-product kernels
HEADLINE = {"ner": ("test entity F1", "f1", "test_f1"), "classify": ("test macro-F1", "macro_f1", "test_macro_f1")}
"""Per task: what the report calls the headline, its key in a run's test scores, its key in nlu's summary."""


# ---------------------------------------------------------------------------- scoring (both sides)


# ---------------------------------------------------------------------------- one run (a subprocess)


def run_nlu(spec: dict) -> dict:
    """``nlu finetune <task> init=<checkpoint>`` with the shared budget, through nlu.runs.run."""
    task, budget, output_dir = spec["task"], spec["budget"], Path(spec["output_dir"]) / "nlu"
    steps_per_epoch = math.ceil(spec["train_size"] / budget["batch_size"])
    settings = load_settings(TASK_FILES[task], [
        f"init={spec['checkpoint']}", *[f"data.{split}={path}" for split, path in spec["files"].items()],
        *recipe_overrides(budget), f"training.output_dir={output_dir}", f"training.seed={spec['seed']}",
        "training.weight_decay=0.01", "training.max_grad_norm=1.0", "training.mixed_precision='no'",
        "training.early_stopping_patience=0", "training.eval_every=0", "training.cpu=true", "training.progress=false",
        # One resumable checkpoint per epoch, as the Trainer's save_strategy="epoch".
        f"training.save_every={steps_per_epoch}", "training.keep_checkpoints=1", "training.log_every=10",
        *spec["extra"]], task=task)
    record = run(settings)
    summary = record.summary
    if task == "ner":
        blocks = [[line.split("\t") for line in block.splitlines() if line]
                  for block in (output_dir / "test" / "predictions.conll").read_text(encoding="utf-8").split("\n\n")]
        test = ner_figures([[row[-2] for row in rows] for rows in blocks if rows],
                           [[row[-1] for row in rows] for rows in blocks if rows])
    else:
        with open(output_dir / "test" / "predictions.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        test = classification_figures([row["label"] for row in rows], [row["predicted"] for row in rows], list(summary["labels"]))
    own = summary[HEADLINE[task][2]]
    if abs(test[HEADLINE[task][1]] - own) > 1e-9:
        raise SystemExit(f"scoring mismatch: this script {test[HEADLINE[task][1]]}, nlu's own report {own}")
    return {"train_seconds": summary["train_seconds"], "steps": summary["steps"], "best_step": summary["best_step"],
            "dev_best": summary["dev_f1" if task == "ner" else "dev_macro_f1"],
            "train_tokens": round(summary["tokens_per_second"] * summary["train_seconds"]),
            "run_seconds": record.wall_seconds, "run_cpu_seconds": record.cpu_seconds, "test": test}


def run_transformers(spec: dict) -> dict:
    """transformers' Trainer on the same files, tokenizer and hyper-parameters (nlu.reference)."""
    read = read_ner_file if spec["task"] == "ner" else read_table
    splits = {split: read(path) for split, path in spec["files"].items()}
    return trainer_finetune(spec["task"], spec["checkpoint"], splits, spec["budget"], spec["output_dir"],
                            seed=spec["seed"])


def paired_steps(spec: dict) -> dict:
    """Training steps of both models on the same NER batches, alternated step by step in one
    process: a contention-robust ratio of the model step alone (forward, backward, clipping, fused
    AdamW). Also nlu on length-grouped batches of the same sentences, to show what padding costs."""
    import transformers
    from nlu.interop import from_transformers
    from nlu.model import ForTokenClassification
    from nlu.tasks.finetune import pad_batch

    transformers.logging.set_verbosity_error()
    checkpoint, batch_size, count = spec["checkpoint"], spec["budget"]["batch_size"], spec["steps"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    sentences = read_ner_file(spec["train_file"])  # the shipped file, whatever slice the runs used
    labels = label_list(sentences)
    max_length = min(spec["budget"]["max_length"],
                     transformers.AutoConfig.from_pretrained(checkpoint).max_position_embeddings)
    windows = encode_ner(sentences, tokenizer, {label: i for i, label in enumerate(labels)}, max_length, 32)
    features = [w.features() for w in windows]
    order = np.random.default_rng(spec["seed"]).permutation(len(features))[: batch_size * (count + 2)]
    by_length = sorted(order, key=lambda i: len(features[i]["input_ids"]))
    batch_of = lambda chosen: [pad_batch([features[i] for i in chosen[s:s + batch_size]], tokenizer.pad_token_id)  # noqa: E731
                               for s in range(0, len(chosen), batch_size)]
    batches = {"random": batch_of(order), "grouped": batch_of(by_length)}
    batches["grouped"] = [batches["grouped"][i] for i in np.random.default_rng(spec["seed"]).permutation(count + 2)]
    models = {"nlu": from_transformers(checkpoint, ForTokenClassification, labels=labels),
              "transformers": transformers.AutoModelForTokenClassification.from_pretrained(checkpoint,
                                                                                          num_labels=len(labels))}
    optimizers = {side: torch.optim.AdamW(model.parameters(), lr=spec["budget"]["learning_rate"], eps=1e-6, fused=True)
                  for side, model in models.items()}
    steps = {"nlu": ("nlu", "random"), "transformers": ("transformers", "random"), "nlu_grouped": ("nlu", "grouped")}
    trainers = {name: training_step(models[side], optimizers[side], lambda model, batch: model(**batch).loss,
                                    batches[kind], max_grad_norm=1.0) for name, (side, kind) in steps.items()}
    times = alternate(trainers, count, Clock(), warmup=2)
    real = {kind: [int(b["attention_mask"].sum()) for b in chosen[2:]] for kind, chosen in batches.items()}
    # The share of each model's operator time in matrix products, on the same batches.
    profiled = {side: operator_times(lambda side=side: [trainers[side](i) for i in range(2, count + 2)]) for side in models}
    matmul_share = {side: operator_shares(operators, {"matmul": MATMUL_OPS}, exact=True)["matmul"]
                    for side, operators in profiled.items()}
    return {"steps": count, "batch_size": batch_size, "threads": torch.get_num_threads(), "seconds": times,
            "padded_fraction": {kind: 1 - sum(real[kind]) / sum(b["attention_mask"].numel() for b in chosen[2:])
                                for kind, chosen in batches.items()},
            **{f"{name}_tokens_per_second": sum(real[kind]) / sum(times[name]) for name, (_, kind) in steps.items()},
            "nlu_over_transformers_step_time": statistics.median(
                [a / b for a, b in zip(times["nlu"], times["transformers"])]),
            "matmul_share": matmul_share}


def work(spec: dict) -> dict:
    """One run in a measured worker process (nlu.reporting.measured_worker)."""
    result = {"paired": paired_steps, "nlu": run_nlu, "transformers": run_transformers}[spec["framework"]](spec)
    if spec["framework"] == "paired":
        return result
    return result | {key: spec[key] for key in ("framework", "variant", "task", "seed", "extra")} | {
        "tokens_per_second": result["train_tokens"] / result["train_seconds"]}


# ---------------------------------------------------------------------------- orchestration


def in_subprocess(spec: dict, label: str, keep: bool = True) -> dict:
    """A fresh measured run (never a reused one: its time and memory are what is measured)."""
    print(f"[vs_transformers] {label} ...", flush=True)
    run_dir = Path(spec["output_dir"])
    result = measured_run(__file__, spec, run_dir, cwd=ROOT)  # task files name data relative to the root
    if not keep:  # weights and optimizer states: ~0.3 GB per MiniLM run
        for pattern in ("nlu/checkpoints", "nlu/model", "nlu/best", "transformers"):
            for path in run_dir.glob(pattern):
                shutil.rmtree(path, ignore_errors=True)
    return result


def run_paired(checkpoint: str, budget: dict, seed: int, steps: int, threads: int, runs_dir: Path) -> dict:
    spec = {"framework": "paired", "checkpoint": checkpoint, "budget": budget, "seed": seed, "steps": steps,
            "threads": threads, "output_dir": str(runs_dir / "ner-paired-steps"),
            "train_file": load_settings(TASK_FILES["ner"], [], task="ner").data["train"]}
    return in_subprocess(spec, f"ner paired steps ({steps} per side)") | {"command": command_line(root=ROOT)}


def checkpoint_facts(checkpoint: str) -> dict:
    """What the report says of the checkpoint, read from it rather than typed in."""
    import transformers

    model = transformers.AutoModel.from_pretrained(checkpoint)
    config = model.config
    source = Path(checkpoint) / ".source.json"
    return {"path": checkpoint, "layers": config.num_hidden_layers, "hidden": config.hidden_size,
            "heads": config.num_attention_heads, "vocabulary": config.vocab_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "source": json.loads(source.read_text()) if source.exists() else None}


# ---------------------------------------------------------------------------- report


METRICS = {
    "ner": [("test entity F1 (micro, strict IOB2)", lambda r: r["test"]["f1"]),
            ("test entity precision", lambda r: r["test"]["precision"]),
            ("test entity recall", lambda r: r["test"]["recall"]),
            ("test entity F1 (macro over types)", lambda r: r["test"]["macro_f1"]),
            ("dev entity F1 of the kept model", lambda r: r["dev_best"])],
    "classify": [("test macro-F1", lambda r: r["test"]["macro_f1"]),
                 (f"test recall[{MINORITY}] (minority)", lambda r: r["test"]["recall"].get(MINORITY)),
                 ("test balanced accuracy", lambda r: r["test"]["balanced_accuracy"]),
                 ("test accuracy", lambda r: r["test"]["accuracy"]),
                 ("dev macro-F1 of the kept model", lambda r: r["dev_best"])],
}
COSTS = [("training wall-clock, s", "train_seconds", 1), ("training CPU time, s", "train_cpu_seconds", 1),
         ("whole run wall-clock, s", "run_seconds", 1), ("whole run CPU time, s", "run_cpu_seconds", 1),
         ("training tokens/s (non-pad)", "tokens_per_second", 0), ("peak RSS, MiB", "peak_rss_mib", 0)]
# nlu's own from-scratch pretrained small encoders (hidden 128, 2 layers), as committed reports.
FROM_SCRATCH = [("ner", "init_ner", "pretrained on news by `nlu run` (learned positions, post-LN)"),
                ("ner", "init_ner_rotary", "pretrained on news + health-news tweets, rotary positions and pre-LN "
                                           "(tasks/pretrain_news_tweets_rotary.yaml)"),
                ("classify", "init_classify", "pretrained on news by `nlu run` (learned positions, post-LN)")]


def small_encoders() -> list[dict]:
    """The pretrained rows of the committed init comparisons (FROM_SCRATCH), as context: a sweep
    (reports/<stem>/sweep.json) or, made before nlu sweep, reports/<stem>.json."""
    found = []
    for task, stem, what in FROM_SCRATCH:
        sweep, older, key = ROOT / "reports" / stem / "sweep.json", ROOT / "reports" / f"{stem}.json", HEADLINE[task][2]
        if sweep.exists():
            values, link = [r["figures"][key] for r in json.loads(sweep.read_text())["rows"]["pretrained"]["runs"]], \
                f"{stem}/sweep.md"
        elif older.exists():
            values, link = [r[key] for r in json.loads(older.read_text())["pretrained"]], f"{stem}.md"
        else:
            continue
        found.append({"task": task, "what": what, "figure": mean_std(values), "report": link})
    return found


def comparison(task: str, left: list[dict], right: list[dict], names: tuple[str, str]) -> list[str]:
    rows = []
    for label, get in METRICS[task]:
        a, b = mean_std(map(get, left)), mean_std(map(get, right))
        rows.append([label, cell(a), cell(b), f"{a['mean'] - b['mean']:+.4f}"])
    for label, key, digits in COSTS:
        if key in left[0] and key in right[0]:
            a, b = mean_std(r[key] for r in left), mean_std(r[key] for r in right)
            rows.append([label, cell(a, digits), cell(b, digits), f"{a['mean'] / b['mean']:.2f}×"])
    return table(["metric", *names, f"{names[0]} − {names[1]} (ratio for costs)"], rows)


def targets(task: str, ours: list[dict], theirs: list[dict]) -> dict:
    get = METRICS[task][0][1]
    gap = mean_std(map(get, ours))["mean"] - mean_std(map(get, theirs))["mean"]
    ratio = mean_std(r["train_seconds"] for r in ours)["mean"] / mean_std(r["train_seconds"] for r in theirs)["mean"]
    return {"quality_gap": gap, "quality_met": gap >= -0.01, "time_ratio": ratio, "time_met": ratio <= 0.5}


def render(result: dict) -> str:
    """reports/vs_transformers.md from its JSON alone."""
    runs, info = result["runs"], result["machine"]
    facts = result.get("checkpoint_facts")
    lines = ["# nlu vs transformers' Trainer on a real pretrained BERT (issue #11)", "",
             f"Made by `{result['command']}` in {result['seconds'] / 60:.1f} min"
             + (" (--quick: a smoke run, not a measurement)" if result["quick"] else "") + ".", "", "## Set-up", "",
             f"- Checkpoint: `{result['checkpoint']}`" + (
                 f": {facts['layers']} layers, hidden {facts['hidden']}, {facts['heads']} heads, "
                 f"{facts['parameters']:,} parameters, vocabulary of {facts['vocabulary']:,}" if facts else "")
             + (f"; built by nlu.sources from {', '.join(w['file'] for w in facts['source']['wheels'])} "
                f"({facts['source'].get('licence', 'licence not recorded')})" if facts and facts["source"] else "") + ".",
             f"- Machine: {machine_line(info)}. Threads recorded per run: "
             f"{sorted({r['threads'] for rs in runs.values() for r in rs})}.",
             f"- Seeds: {result['seeds']}; each run a fresh subprocess; runs alternate nlu / Trainer seed by seed.",
             "- Same work on both sides (see the script's docstring): files, tokenizer, max length, batch size, learning "
             "rate, linear decay with int(warm-up ratio × steps) warm-up steps, fused AdamW (β 0.9/0.999, ε 1e-6, weight "
             "decay 0.01 except biases and LayerNorms), clipping at 1.0, fp32, dev evaluation and a checkpoint every "
             "epoch, the best-dev model scored; NER labels on each word's first sub-token.",
             "- Costs: *training wall-clock* is each side's training clock (nlu's loop; the Trainer's construction and "
             "`train()`; *training CPU time*, in reports made before nlu.runs, the CPU time of that call); *whole run* "
             "adds model loading, tokenisation and the test evaluation (nlu's also writes its test report and plots); "
             "*tokens/s* = non-pad training tokens / training wall-clock; *peak RSS* = the run's process high-water "
             "mark (`ru_maxrss`).", "", "### Budget", "",
             *table(["task", "max_length", "batch", "learning rate", "warm-up", "epochs", "train", "dev", "test"],
                    [[task, b["max_length"], b["batch_size"], f"{b['learning_rate']:g}", b["warmup_ratio"], b["epochs"],
                      *(f"{b['sizes'][s]:,}" + (" (stratified subset)" if b.get(f"{s}_limit") else "")
                        for s in ("train", "dev", "test"))] for task, b in result["budget"].items()]), ""]
    verdicts = {}
    for task in ("ner", "classify"):
        ours, theirs = runs.get(f"{task}/nlu/base"), runs.get(f"{task}/transformers/base")
        if not ours or not theirs:
            continue
        verdicts[f"{task}/base"] = targets(task, ours, theirs)
        title = "NER" if task == "ner" else "Imbalanced classification"
        lines += [f"## {title}: nlu vs Trainer, same recipe", "", "Mean ± sample std over seeds.", "",
                  *comparison(task, ours, theirs, ("nlu", "Trainer")), "",
                  f"Tokens trained per run: nlu {mean_std(r['train_tokens'] for r in ours)['mean']:,.0f}, Trainer "
                  f"{mean_std(r['train_tokens'] for r in theirs)['mean']:,.0f}.", ""]
        if task == "ner":
            support = ours[0]["test"]["per_type_support"]
            types = sorted(set().union(*[r["test"]["per_type_f1"] for r in ours + theirs]))
            lines += ["Per entity type (test F1, strict):", "", *table(
                ["entity type", "test support", "F1 nlu", "F1 Trainer"],
                [[t, support.get(t, 0), *(cell(mean_std(r["test"]["per_type_f1"].get(t, 0.0) for r in side))
                                          for side in (ours, theirs))] for t in types]), ""]
        improved = runs.get(f"{task}/nlu/improved")
        options = result["improved_options"][task]
        if improved:
            verdicts[f"{task}/improved"] = targets(task, improved, theirs)
            lines += [f"### nlu with {', '.join(f'`{o}`' for o in options)} vs the same Trainer runs", "",
                      *comparison(task, improved, theirs, ("nlu improved", "Trainer")), ""]
        elif not options:
            lines += [f"No nlu-improved {title} block: nlu has no option that does better than its defaults here.", ""]
    paired = result.get("paired_steps")
    if paired:
        times = {side: statistics.median(values) for side, values in paired["seconds"].items()}
        lines += ["## Speed of the training step alone, alternated (NER)", "",
                  f"In one process, {paired['steps']} training steps per side (after 2 warm-up steps) on the same random "
                  f"batches of {paired['batch_size']} training tweets padded to the longest; the sides alternate step by "
                  "step. The third column is nlu on length-grouped batches of the same tweets (what padding costs)."
                  + (f" Measured by `{paired['command']}`." if "command" in paired else ""), "",
                  *table(["", "nlu", "Trainer's model", "nlu, length-grouped batches"], [
                      ["median step, s", *(f"{times[s]:.3f}" for s in ("nlu", "transformers", "nlu_grouped"))],
                      ["tokens/s (non-pad)", *(f"{paired[f'{s}_tokens_per_second']:.0f}"
                                               for s in ("nlu", "transformers", "nlu_grouped"))],
                      ["padded share of positions", *(f"{paired['padded_fraction'][k]:.1%}"
                                                      for k in ("random", "random", "grouped"))]]), "",
                  f"Median of the per-pair ratios, nlu step / Trainer model step: "
                  f"**{paired['nlu_over_transformers_step_time']:.2f}** ({paired['threads']} torch threads).", ""]
        share = paired.get("matmul_share")
        if share:
            matmul = share["nlu"] * times["nlu"]
            lines += [f"Matrix products (aten mm / addmm / bmm, torch.profiler) take {share['nlu']:.0%} of nlu's step "
                      f"and {share['transformers']:.0%} of the Trainer model's. nlu's matrix products alone, "
                      f"{matmul:.3f} s a step, are {matmul / times['transformers']:.2f}× the Trainer model's whole step: "
                      "how far less framework overhead could take this recipe at equal work.", ""]
    lines += ["## Targets", ""]
    for key, verdict in verdicts.items():
        task, block = key.split("/")
        lines.append(f"- {task}, {'same recipe' if block == 'base' else 'nlu improved'}: {HEADLINE[task][0]} nlu − "
                     f"Trainer {verdict['quality_gap']:+.4f} → within 1 point or above: "
                     f"**{'met' if verdict['quality_met'] else 'not met'}**; training wall-clock nlu / Trainer "
                     f"{verdict['time_ratio']:.2f} → ≤ 0.5: **{'met' if verdict['time_met'] else 'not met'}**.")
    context = []
    for entry in result.get("small_encoders", []):
        task, ours, link, what = entry["task"], entry["figure"], entry["report"], entry["what"]
        if f"{task}/nlu/base" in runs:
            theirs = mean_std(map(METRICS[task][0][1], runs[f"{task}/nlu/base"]))
            context.append(f"- {task}: the small encoder {what}: {HEADLINE[task][0]} {cell(ours)} ([{link}]({link})), "
                           f"{'above' if ours['mean'] > theirs['mean'] else 'below'} the real checkpoint's "
                           f"{cell(theirs)} fine-tuned by nlu above (on its own, longer budget).")
    if context:
        lines += ["", "## Context: nlu's own from-scratch pretrained small encoders", "", *context]
    lines += ["", "## Runs", "", *table(
        ["task", "side", "seed", "test headline", "dev best", "steps", "train s", "tokens/s", "peak RSS MiB", "threads",
         "load avg before → after"],
        [[task, framework + (" improved" if variant == "improved" else ""), r["seed"],
          f"{r['test'][HEADLINE[task][1]]:.4f}", "–" if r["dev_best"] is None else f"{r['dev_best']:.4f}", r["steps"],
          f"{r['train_seconds']:.1f}", f"{r['tokens_per_second']:.0f}", f"{r['peak_rss_mib']:.0f}", r["threads"],
          f"{r['load_before']:.2f} → {r['load_after']:.2f}"]
         for key, rs in runs.items() for task, framework, variant in [key.split("/")] for r in rs], "llrrrrrrrrl"), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a transformers BERT directory (default: all-MiniLM-L6-v2, fetched "
                                             "into ~/.cache/nlu if absent)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tasks", nargs="+", choices=["ner", "classify"], default=["ner", "classify"])
    parser.add_argument("--quick", action="store_true", help="one seed, a few steps on small slices (a smoke test)")
    parser.add_argument("--no-improved", action="store_true", help="skip the nlu-improved block")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's)")
    parser.add_argument("--runs-dir", type=Path, help="default runs/vs_transformers (or ...-quick)")
    parser.add_argument("--out", type=Path, help="report folder (default reports/, or the runs dir with --quick)")
    parser.add_argument("--paired-steps", type=int, default=None,
                        help="NER training steps per side in the alternating step benchmark (default 8; --quick 2; 0: skip)")
    parser.add_argument("--keep-models", action="store_true", help="keep weights and checkpoints of every run")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="rewrite the Markdown report from a saved vs_transformers.json (no training)")
    parser.add_argument("--rerun-paired", action="store_true",
                        help="with --render: run the paired NER step benchmark again and save it into the JSON")
    args = parser.parse_args()
    if args.worker:
        measured_worker(args.worker, work)
        return 0
    if args.rerun_paired and not args.render:
        parser.error("--rerun-paired re-measures into saved results: give them with --render JSON")
    if args.render:
        saved = json.loads(args.render.read_text())
        if args.rerun_paired:
            before = saved["paired_steps"]
            if not before:
                parser.error(f"{args.render} has no paired step benchmark to re-run (it was skipped: --paired-steps 0)")
            saved["paired_steps"] = run_paired(saved["checkpoint"], saved["budget"]["ner"], saved["seeds"][0],
                                               before["steps"], before["threads"],
                                               args.runs_dir or ROOT / "runs/vs_transformers")
        saved["small_encoders"] = small_encoders()
        print(f"report: {write_report((args.out or args.render.parent) / 'vs_transformers', saved, render)}")
        return 0
    started = time.perf_counter()
    checkpoint = str(model_directory(args.checkpoint or "all-MiniLM-L6-v2").resolve())
    runs_dir = args.runs_dir or ROOT / ("runs/vs_transformers-quick" if args.quick else "runs/vs_transformers")
    out = args.out or (runs_dir if args.quick else ROOT / "reports")
    seeds = args.seeds[:1] if args.quick else args.seeds
    paired_count = (2 if args.quick else 8) if args.paired_steps is None else args.paired_steps
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    budgets, files = {}, {}
    for task in args.tasks:
        budget = dict((QUICK if args.quick else BUDGET)[task])
        data = load_settings(TASK_FILES[task], [], task=task).data
        files[task] = write_slices({split: ROOT / data[split] for split in ("train", "dev", "test")},
                                   {split: budget[f"{split}_limit"] for split in ("train", "dev", "test")},
                                   runs_dir / "data" / task, SUBSET_SEED)
        read = read_ner_file if task == "ner" else read_table
        budgets[task] = budget | {"sizes": {split: len(read(path)) for split, path in files[task].items()}}
    results: dict[str, list[dict]] = {}
    for task in args.tasks:
        plan = [("nlu", "base", []), ("transformers", "base", [])]
        plan += [("nlu", "improved", IMPROVED[task])] if IMPROVED[task] and not args.no_improved else []
        for seed in seeds:
            for framework, variant, extra in plan:
                spec = {"framework": framework, "variant": variant, "task": task, "seed": seed, "extra": extra,
                        "checkpoint": checkpoint, "files": files[task], "budget": budgets[task],
                        "train_size": budgets[task]["sizes"]["train"], "threads": threads,
                        "output_dir": str(runs_dir / f"{task}-{framework}-{variant}-seed{seed}")}
                label = f"{task} {framework}{'+' if variant == 'improved' else ''} seed {seed}"
                result = in_subprocess(spec, label, keep=args.keep_models)
                print(f"[vs_transformers] {label}: {HEADLINE[task][0]} {result['test'][HEADLINE[task][1]]:.4f}, "
                      f"train {result['train_seconds']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB", flush=True)
                results.setdefault(f"{task}/{framework}/{variant}", []).append(result)
    paired = (run_paired(checkpoint, budgets["ner"], seeds[0], paired_count, threads, runs_dir)
              if "ner" in args.tasks and paired_count else None)
    payload = {"command": command_line(root=ROOT), "seconds": time.perf_counter() - started, "quick": args.quick,
               "checkpoint": checkpoint, "checkpoint_facts": checkpoint_facts(checkpoint), "seeds": seeds,
               "machine": machine("transformers", "accelerate"), "budget": budgets, "improved_options": IMPROVED,
               "paired_steps": paired, "small_encoders": small_encoders(), "runs": results}
    payload["targets"] = {f"{task}/{variant}": targets(task, results[f"{task}/nlu/{variant}"],
                                                       results[f"{task}/transformers/base"])
                          for task in args.tasks for variant in ("base", "improved") if f"{task}/nlu/{variant}" in results}
    report = write_report(out / "vs_transformers", payload, render)
    print(f"[vs_transformers] {payload['seconds'] / 60:.1f} min; report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
