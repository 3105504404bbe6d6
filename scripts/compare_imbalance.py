"""Compare the imbalance remedies of ``nlu.tasks.classify`` on the shipped Rotten Tomatoes data (issue #5).

    OMP_NUM_THREADS=1 python scripts/compare_imbalance.py                       # defaults, one seed
    OMP_NUM_THREADS=1 python scripts/compare_imbalance.py --seeds 1 2 3         # mean ± std over seeds
    OMP_NUM_THREADS=1 python scripts/compare_imbalance.py --init runs/pretrain_news/model
    OMP_NUM_THREADS=1 python scripts/compare_imbalance.py --quick               # a 20-step smoke run

Every row is fine-tuned from the same starting point with the same seed, tokenizer, model and
budget (epochs or steps, batch size, learning rate, schedule, max_length); only the remedy
changes:

    ce                      plain cross-entropy
    weighted_ce             cross-entropy with sklearn's "balanced" class weights n / (k * count)
    focal                   focal loss, gamma 2 (no class weights)
    oversample              weighted sampler, p(example) ∝ count(label)^-1 (each epoch: n draws)
    logit_adjustment=train  tau * log(prior) added to the logits inside the loss (tau 1)
    logit_adjustment=predict  plain CE, tau * log(prior) subtracted from the logits at prediction (tau 1)

Each run selects its checkpoint on dev macro-F1 (evaluated once per epoch) and is scored once on
test. Without ``--init`` the encoder is a small BERT built from scratch (tasks/rotten_tomatoes_compare.yaml)
with a WordPiece vocabulary trained once on the training texts and cached in the runs folder.
A TF-IDF (1-2 gram) + logistic regression baseline (plain and class_weight="balanced") on the
same split is reported as context.

Writes ``OUT.md``, ``OUT.json`` and ``OUT/*.png`` (default OUT = reports/imbalance); run folders
go to ``runs/imbalance/<strategy>-seed<k>`` and are deleted before each run (a fresh start).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "tasks" / "rotten_tomatoes_compare.yaml"

# name -> (what the report calls it, overrides)
STRATEGIES: dict[str, tuple[str, list[str]]] = {
    "ce": ("ce", ["data.loss=ce"]),
    "weighted_ce": ("weighted_ce (balanced)", ["data.loss=weighted_ce"]),
    "focal": ("focal (γ=2)", ["data.loss=focal", "data.focal_gamma=2.0"]),
    "oversample": ("oversample (power 1)", ["data.oversample=true", "data.oversample_power=1.0"]),
    "la_train": ("logit_adjustment=train (τ=1)", ["data.logit_adjustment=train", "data.logit_adjustment_tau=1.0"]),
    "la_predict": ("logit_adjustment=predict (τ=1)",
                   ["data.logit_adjustment=predict", "data.logit_adjustment_tau=1.0"]),
}
METRICS = ("macro_f1", "balanced_accuracy", "accuracy", "recall_fresh", "recall_plot", "recall_rotten",
           "train_seconds")
MINORITY = "plot"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", help="nlu or transformers BERT checkpoint to start from (default: from scratch)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-steps", type=int, default=0, help="optimizer steps per run (overrides --epochs)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default: the base config's (1e-3)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="WordPiece vocabulary (from scratch only)")
    parser.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), default=list(STRATEGIES))
    parser.add_argument("--config", default=str(BASE_CONFIG), help="base task file")
    parser.add_argument("--out", help="output stem: OUT.md, OUT.json, OUT/ (default reports/imbalance)")
    parser.add_argument("--runs", help="run folders go here (default runs/imbalance)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 20 steps per run, outputs under runs/imbalance_quick unless --out/--runs")
    parser.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF + logistic regression rows")
    parser.add_argument("--progress", action="store_true", help="show the training loop's progress bars")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite OUT.md and the plot from an existing OUT.json, without training")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_steps = args.max_steps or 20
    default_root = ROOT / "runs" / ("imbalance_quick" if args.quick else "imbalance")
    args.runs = Path(args.runs) if args.runs else default_root
    args.out = Path(args.out) if args.out else (default_root / "imbalance" if args.quick
                                                else ROOT / "reports" / "imbalance")
    args.argv = sys.argv[1:] if argv is None else argv
    return args


# ---------------------------------------------------------------------------------------------
# Data, tokenizer, machine
# ---------------------------------------------------------------------------------------------


def class_counts(path: str) -> dict[str, int]:
    from nlu.data.classification import read_table

    return dict(sorted(Counter(e.label for e in read_table(path)).items()))


def cached_tokenizer(train_path: str, vocab_size: int, folder: Path) -> Path:
    """Train the WordPiece vocabulary once; later invocations reuse it (retraining can change
    ties on small corpora, see nlu.tokenizer._renumber_sorted)."""
    from nlu.data.classification import read_table
    from nlu.tokenizer import save_tokenizer, train_tokenizer

    target = folder / f"tokenizer-{vocab_size}"
    if not (target / "tokenizer.json").is_file():
        texts = [example.text for example in read_table(train_path)]
        partial = folder / f".tokenizer-{vocab_size}.partial"
        save_tokenizer(train_tokenizer(iter(texts), vocab_size=vocab_size), partial)
        if target.exists():
            import shutil
            shutil.rmtree(target)
        os.replace(partial, target)
    return target


def truncation_by_class(path: str, tokenizer_dir: Path, max_length: int) -> dict[str, dict[str, int]]:
    """How many texts of each class are longer than max_length tokens ([CLS] and [SEP] included)."""
    from nlu.data.classification import read_table
    from nlu.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    examples = read_table(path)
    lengths = [len(ids) for ids in tokenizer([e.text for e in examples])["input_ids"]]
    result: dict[str, dict[str, int]] = {}
    for example, length in zip(examples, lengths):
        row = result.setdefault(example.label, {"texts": 0, "truncated": 0})
        row["texts"] += 1
        row["truncated"] += int(length > max_length)
    return dict(sorted(result.items()))


def machine() -> dict:
    import torch

    info = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": "cpu",
    }
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    return info


# ---------------------------------------------------------------------------------------------
# Fine-tuning runs
# ---------------------------------------------------------------------------------------------


def silence_progress_bars() -> None:
    """The loop passes ``disable=`` itself, so TQDM_DISABLE cannot reach it; one summary line per run
    is printed instead of six progress bars per seed."""
    from nlu.training import loop

    original = loop.tqdm

    def quiet(*args, **kwargs):
        kwargs["disable"] = True
        return original(*args, **kwargs)

    loop.tqdm = quiet


def run_one(args: argparse.Namespace, strategy: str, seed: int, tokenizer_dir: Path | None) -> dict:
    from nlu.cli import check_run_folder
    from nlu.settings import load_settings
    from nlu.tasks import classify

    run_dir = args.runs / f"{strategy}-seed{seed}"
    overrides = [
        *STRATEGIES[strategy][1],
        f"data.max_length={args.max_length}",
        f"training.output_dir={run_dir}",
        f"training.seed={seed}",
        f"training.batch_size={args.batch_size}",
        f"training.epochs={args.epochs}",
        f"training.max_steps={args.max_steps}",
    ]
    if args.lr is not None:
        overrides.append(f"training.learning_rate={args.lr}")
    if args.init:
        overrides.append(f"init={args.init}")
    else:
        overrides.append(f"data.tokenizer={tokenizer_dir}")
    settings = load_settings(args.config, overrides, task="classify")
    if args.init:
        settings.model = {}  # the checkpoint's own architecture; the base file's model section is for scratch runs
    check_run_folder(settings, run_dir, force=True)  # delete the folder, then save settings.yaml in the new one
    started = time.perf_counter()
    summary = classify.run(settings)
    wall = time.perf_counter() - started
    test_metrics = json.loads((run_dir / "test" / "metrics.json").read_text())
    return {
        "strategy": strategy, "seed": seed, "run_dir": str(run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT)
                                                           else run_dir),
        "macro_f1": summary["test_macro_f1"], "balanced_accuracy": summary["test_balanced_accuracy"],
        "accuracy": summary["test_accuracy"],
        **{f"recall_{label}": summary[f"test_recall[{label}]"] for label in summary["labels"]},
        "mcc": test_metrics["scores"]["mcc"],
        "per_class": test_metrics["scores"]["per_class"],
        "dev_macro_f1": summary.get("dev_macro_f1"), "best_step": summary["best_step"], "steps": summary["steps"],
        "train_seconds": summary["train_seconds"], "wall_seconds": wall,
        "train_truncated": summary["train_truncated"], "test_truncated": test_metrics["truncated"],
        "train_examples": summary["train_examples"], "labels": summary["labels"],
    }


def read_predictions(run_dir: Path) -> tuple[list[str], list[str]]:
    import csv

    with open(run_dir / "test" / "predictions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [row["label"] for row in rows], [row["predicted"] for row in rows]


def paired_bootstrap(gold: list[str], first: list[str], second: list[str], labels: list[str],
                     resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Macro-F1(second) - macro-F1(first) on test, with a 95% percentile interval from resampling
    the test examples (both systems scored on the same resample)."""
    y = np.array([labels.index(v) for v in gold])
    a = np.array([labels.index(v) for v in first])
    b = np.array([labels.index(v) for v in second])
    index = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))

    def macro_f1(pred: np.ndarray) -> np.ndarray:
        truth, guess = y[index], pred[index]
        scores = []
        for c in range(len(labels)):
            tp = ((truth == c) & (guess == c)).sum(1)
            fp = ((truth != c) & (guess == c)).sum(1)
            fn = ((truth == c) & (guess != c)).sum(1)
            denominator = 2 * tp + fp + fn
            scores.append(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0))
        return np.mean(scores, axis=0)

    difference = macro_f1(b) - macro_f1(a)
    low, high = np.percentile(difference, [2.5, 97.5])
    return {"mean": float(difference.mean()), "ci95_low": float(low), "ci95_high": float(high),
            "p_le_0": float((difference <= 0).mean()), "resamples": resamples}


# ---------------------------------------------------------------------------------------------
# Baseline
# ---------------------------------------------------------------------------------------------


def tfidf_baselines(train_path: str, test_path: str) -> dict[str, dict]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from nlu.data.classification import read_table
    from nlu.evaluation.metrics import classification_scores

    train, test = read_table(train_path), read_table(test_path)
    labels = sorted({e.label for e in train})
    results = {}
    for name, weight in (("tfidf_lr", None), ("tfidf_lr_balanced", "balanced")):
        started = time.perf_counter()
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        features = vectorizer.fit_transform([e.text for e in train])
        model = LogisticRegression(max_iter=2000, class_weight=weight, C=1.0)
        model.fit(features, [e.label for e in train])
        predicted = model.predict(vectorizer.transform([e.text for e in test])).tolist()
        seconds = time.perf_counter() - started
        scores = classification_scores([e.label for e in test], predicted, labels)
        results[name] = {
            "macro_f1": scores["macro_f1"], "balanced_accuracy": scores["balanced_accuracy"],
            "accuracy": scores["accuracy"], "mcc": scores["mcc"],
            **{f"recall_{label}": scores["per_class"][label]["recall"] for label in labels},
            "train_seconds": seconds, "features": len(vectorizer.vocabulary_),
        }
    return results


# ---------------------------------------------------------------------------------------------
# Aggregation and report
# ---------------------------------------------------------------------------------------------


def aggregate(runs: list[dict], strategies: list[str]) -> dict[str, dict[str, dict]]:
    table = {}
    for strategy in strategies:
        rows = [run for run in runs if run["strategy"] == strategy]
        table[strategy] = {}
        labels = rows[0]["labels"] if rows else []
        extra = [f"{kind}_{label}" for kind in ("precision", "f1") for label in labels]
        for metric in (*METRICS, "mcc", "dev_macro_f1", *extra):
            kind, _, label = metric.partition("_")
            values = [float(run["per_class"][label][kind]) if metric in extra else float(run[metric])
                      for run in rows if metric in extra or run.get(metric) is not None]
            table[strategy][metric] = {
                "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                "values": values,
            }
    return table


def one_class(run: dict) -> str | None:
    """The label a run predicts for every test text, or None when it predicts several."""
    predicted = [label for label, row in run["per_class"].items()
                 if row["precision"] > 0 or row["recall"] > 0]
    recalls = {label: row["recall"] for label, row in run["per_class"].items()}
    return predicted[0] if len(predicted) == 1 and recalls[predicted[0]] == 1.0 else None


def cell(entry: dict, digits: int = 4) -> str:
    text = f"{entry['mean']:.{digits}f}"
    return text + (f" ± {entry['std']:.{digits}f}" if entry.get("std") is not None else "")


def plot(aggregated: dict, baselines: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(aggregated)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 4))
    for offset, metric, title in ((-0.2, "macro_f1", "test macro-F1"), (0.2, f"recall_{MINORITY}",
                                                                          f"test recall ({MINORITY})")):
        means = [aggregated[n][metric]["mean"] for n in names]
        errors = [aggregated[n][metric]["std"] or 0.0 for n in names]
        ax.bar(x + offset, means, width=0.4, yerr=errors if any(errors) else None, label=title, capsize=3)
    for (name, row), style in zip(baselines.items(), ("--", ":")):
        ax.axhline(row["macro_f1"], color="grey", linestyle=style, linewidth=1, label=f"{name} macro-F1")
    ax.set_xticks(x, names, rotation=15)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Imbalance remedies on Rotten Tomatoes (test)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(args: argparse.Namespace, result: dict) -> None:
    aggregated, baselines, seeds = result["aggregate"], result["baselines"], result["settings"]["seeds"]
    several = len(seeds) > 1
    counts = result["data"]["class_counts"]
    lines = [
        "# Imbalance remedies compared (issue #5)", "",
        "Produced by:", "", "```", result["command"], "```", "",
        (f"Generated {result['finished']}; the whole script took **{result['runtime_seconds'] / 60:.1f} min** "
        f"({result['runtime_seconds']:.0f} s wall)."), "",
        "## Setup", "",
        (f"- Machine: {result['machine']['cpu_count']} CPUs ({result['machine']['cpus_usable']} usable), "
        f"torch {result['machine']['torch']} with {result['machine']['torch_threads']} thread(s) "
        f"(OMP_NUM_THREADS={result['machine']['OMP_NUM_THREADS']}), device {result['machine']['device']}, "
        f"Python {result['machine']['python']}."),
        "- Data (data/classification/rotten_tomatoes): "
        + "; ".join(f"{split} " + ", ".join(f"{label} {n:,}" for label, n in counts[split].items())
                    for split in ("train", "dev", "test")) + ".",
        f"- Starting point: {result['settings']['starting_point']}.",
        f"- Budget, identical for every row: {result['settings']['budget']}.",
        f"- Seeds: {', '.join(map(str, seeds))}" + (" (cells are mean ± sample std over seeds)" if several
                                                     else " (a single seed: no spread is available)") + ".",
        ("- Each run keeps the checkpoint with the best **dev** macro-F1 (evaluated at the end of every epoch and "
        "at the last step) and is scored once on **test** (1,383 texts). Only the remedy differs between rows."),
    ]
    trunc = result["data"]["truncation"]
    lines += [
        f"- Truncation at max_length={args.max_length} tokens: {result['data']['train_truncated']:,} of "
        f"{result['data']['train_examples']:,} training texts and {result['data']['test_truncated']:,} of 1,383 "
        "test texts are longer and are read up to that length; by class (train / test): "
        + ", ".join(f"{label} {trunc['train'][label]['truncated']:,}/{trunc['train'][label]['texts']:,} · "
                    f"{trunc['test'][label]['truncated']}/{trunc['test'][label]['texts']}" for label in trunc["train"])
        + f". Plot summaries are long, so it is mostly the minority class that is cut (the model sees their "
        f"first {args.max_length - 2} word pieces).",
    ]
    if args.max_length != 128:
        lines.append(f"- To re-score a saved run with `nlu evaluate classify`, pass `--max-length {args.max_length}`: "
                     "the CLI reads 128 tokens by default, and the length a model was fine-tuned with is not saved "
                     "beside it.")
    lines += [
        "",
        "## Results (test set)", "",
        ("| strategy | macro-F1 | balanced accuracy | accuracy | recall fresh | recall plot (minority) | recall rotten "
        "| train seconds |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy, row in aggregated.items():
        values = " | ".join(cell(row[m]) for m in METRICS[:-1])
        lines.append(f"| {STRATEGIES[strategy][0]} | {values} | {cell(row['train_seconds'], 0)} |")
    for name, row in baselines.items():
        label = {"tfidf_lr": "*context:* TF-IDF 1–2-gram + LogReg",
                 "tfidf_lr_balanced": "*context:* TF-IDF 1–2-gram + LogReg, class_weight=balanced"}[name]
        values = " | ".join(f"{row[m]:.4f}" for m in METRICS[:-1])
        lines.append(f"| {label} | {values} | {row['train_seconds']:.0f} |")
    lines += ["", ("Train seconds: the fine-tuning loop's own clock (includes the per-epoch dev evaluations), "
              "on a CPU shared with other work, so treat them as rough."), ""]
    best = result["best"]
    lines += ["## Verdict", ""]
    verdict_start = len(lines)
    if best["strategy"] == "ce":
        text = (f"Plain **ce** has the highest test macro-F1 ({cell(aggregated['ce']['macro_f1'])}); "
                "no remedy beat it under this budget.")
        if best.get("runner_up"):
            text += (f" The runner-up, {STRATEGIES[best['runner_up']][0]}, is {best['runner_up_gain']:+.4f} "
                     "macro-F1 from ce.")
        lines.append(text)
    else:
        lines.append(f"Best by test macro-F1: **{STRATEGIES[best['strategy']][0]}**, "
                     f"{cell(aggregated[best['strategy']]['macro_f1'])} against ce's "
                     f"{cell(aggregated['ce']['macro_f1'])}: a gain of **{best['gain_over_ce']:+.4f}** macro-F1 "
                     f"({100 * best['gain_over_ce']:+.1f} points).")
    boot = result.get("bootstrap")
    if boot:
        verdict = ("the interval excludes 0" if boot["ci95_low"] > 0 or boot["ci95_high"] < 0
                   else "the interval includes 0, so this difference is within test-set noise")
        lines.append(f"Paired bootstrap over the test texts (seed {boot['seed']}, {boot['resamples']} resamples), "
                     f"{STRATEGIES[boot['strategy']][0]} minus ce: {boot['mean']:+.4f}, 95% interval "
                     f"[{boot['ci95_low']:+.4f}, {boot['ci95_high']:+.4f}]: {verdict}. This covers test-set sampling "
                     "only, not training randomness" + (" (see the ± over seeds)." if several else
                                                        ": with a single seed, a gap of a few points between "
                                                        "rows can come from the initialisation and data order "
                                                        "alone, so rerun with --seeds 1 2 3 before relying on "
                                                        "this ranking."))
    lines.append(f"The best row was also picked by looking at test; on **dev** macro-F1 (the selection metric) "
                 f"the order starts with {', '.join(STRATEGIES[s][0] for s in best['dev_order'][:3])}.")
    top_recall = max(aggregated[s][f"recall_{MINORITY}"]["mean"] for s in aggregated)
    leaders = [s for s in aggregated if aggregated[s][f"recall_{MINORITY}"]["mean"] == top_recall]
    lines.append(f"Highest minority ({MINORITY}) recall: {' and '.join(STRATEGIES[s][0] for s in leaders)} "
                 f"({cell(aggregated[leaders[0]][f'recall_{MINORITY}'])}; ce {cell(aggregated['ce'][f'recall_{MINORITY}'])}).")

    def spread(metric: str) -> str:
        values = [aggregated[s][metric]["mean"] for s in aggregated]
        return f"{min(values):.3f}–{max(values):.3f}"

    labels = result["runs"][0]["labels"]
    if all(f"f1_{label}" in aggregated["ce"] for label in labels):
        lines.append("Where the differences come from: per-class test F1 across the rows spans "
                     + ", ".join(f"{label} {spread(f'f1_{label}')}" for label in labels)
                     + f"; {MINORITY} precision spans {spread(f'precision_{MINORITY}')}.")
        ranges = {label: [aggregated[s][f"f1_{label}"]["mean"] for s in aggregated] for label in labels}
        widths = {label: max(values) - min(values) for label, values in ranges.items()}
        if min(widths, key=widths.get) == MINORITY:
            others = [label for label in labels if label != MINORITY]
            worst = {label: min(aggregated, key=lambda s: aggregated[s][f"recall_{label}"]["mean"]) for label in others}
            lines.append(f"So the minority class varies least between rows; most of the macro-F1 spread comes from "
                         f"where each remedy puts the boundary between the two large classes ({' and '.join(others)}): "
                         + "; ".join(f"lowest {label} recall {aggregated[worst[label]][f'recall_{label}']['mean']:.3f} "
                                     f"({STRATEGIES[worst[label]][0]})" for label in others) + ".")
    collapsed = [run for run in result["runs"] if one_class(run)]
    if collapsed:
        lines.append("**Runs that never left the majority-class solution** (every test text gets the same label): "
                     + ", ".join(f"{STRATEGIES[run['strategy']][0]} seed {run['seed']} (all '{one_class(run)}')"
                                 for run in collapsed)
                     + ". They are included in the means above; a from-scratch encoder at this budget can stall "
                       "like this, which is one more reason to look at several seeds.")
    still = [run for run in result["runs"] if run["best_step"] == run["steps"]]
    if still:
        lines.append(f"In {len(still)} of {len(result['runs'])} runs the best dev checkpoint is the last step: those "
                     "models were still improving when the budget ran out, so this compares the remedies at a fixed, "
                     "short budget, not at convergence.")
    if baselines:
        top = max(baselines, key=lambda n: baselines[n]["macro_f1"])
        above = [s for s in aggregated if aggregated[s]["macro_f1"]["mean"] > baselines[top]["macro_f1"]]
        lines.append(f"Context: TF-IDF + logistic regression reaches {baselines[top]['macro_f1']:.4f} macro-F1 "
                     f"({'class_weight=balanced' if top.endswith('balanced') else 'unweighted'}) in "
                     f"{baselines[top]['train_seconds']:.0f} s; "
                     + (f"of the fine-tuned rows only {', '.join(STRATEGIES[s][0] for s in above)} "
                        f"{'is' if len(above) == 1 else 'are'} above it." if above
                        else "none of the fine-tuned rows reaches it."))
    lines[verdict_start:] = [f"- {line}" for line in lines[verdict_start:]]
    lines += ["", f"![macro-F1 and {MINORITY} recall per strategy]({result['plot']})", "",
              "## Per run", "",
              "| run | seed | dev macro-F1 | best step / steps | test macro-F1 | plot precision | plot recall | MCC | note |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in result["runs"]:
        plot_row = run["per_class"][MINORITY]
        lines.append(f"| {run['run_dir']} | {run['seed']} | {run['dev_macro_f1']:.4f} | {run['best_step']} / "
                     f"{run['steps']} | {run['macro_f1']:.4f} | {plot_row['precision']:.4f} | "
                     f"{plot_row['recall']:.4f} | {run['mcc']:.4f} | "
                     + (f"predicts only '{one_class(run)}' |" if one_class(run) else " |"))
    lines += ["", ("Each run folder (git-ignored) holds report.md, settings.yaml, log.jsonl and test/ "
              "(confusion matrices, predictions.csv). All numbers: "
              f"[{Path(result['json']).name}]({Path(result['json']).name})."), ""]
    args.out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")


def rewrite_report(args: argparse.Namespace) -> int:
    """OUT.md and the plot again from OUT.json (after a change to the report's layout): the command,
    settings and runtime stay those of the run that produced the numbers."""
    result = json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8"))
    saved = parse_args(shlex.split(result["command"].split("compare_imbalance.py", 1)[1]))
    saved.out, saved.runs = args.out, args.runs
    result["aggregate"] = aggregate(result["runs"], list(result["aggregate"]))
    plot(result["aggregate"], result["baselines"], args.out / "macro_f1_recall.png")
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
    write_report(saved, result)
    print(f"report: {args.out.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        return rewrite_report(args)
    started_at = time.perf_counter()
    import torch

    from nlu.settings import load_settings

    base = load_settings(args.config, [], task="classify")
    if not args.progress:
        silence_progress_bars()
    paths = {split: base.data[split] for split in ("train", "dev", "test")}
    args.runs.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts = {split: class_counts(path) for split, path in paths.items()}
    print(f"class counts: {counts}", flush=True)

    tokenizer_dir = None if args.init else cached_tokenizer(paths["train"], args.vocab_size, args.runs)
    truncation = {split: truncation_by_class(paths[split], tokenizer_dir or Path(args.init), args.max_length)
                  for split in ("train", "test")}

    runs = []
    for seed in args.seeds:
        for strategy in args.strategies:
            run = run_one(args, strategy, seed, tokenizer_dir)
            runs.append(run)
            print(f"{strategy:>12} seed {seed}: test macro-F1 {run['macro_f1']:.4f}  bal-acc "
                  f"{run['balanced_accuracy']:.4f}  plot recall {run['recall_plot']:.4f}  "
                  f"({run['train_seconds']:.0f} s train, {run['wall_seconds']:.0f} s wall)", flush=True)

    baselines = {} if args.no_baseline else tfidf_baselines(paths["train"], paths["test"])
    aggregated = aggregate(runs, args.strategies)
    order = sorted(aggregated, key=lambda s: aggregated[s]["macro_f1"]["mean"], reverse=True)
    best = {"strategy": order[0], "by": "mean test macro-F1",
            "gain_over_ce": aggregated[order[0]]["macro_f1"]["mean"] - aggregated["ce"]["macro_f1"]["mean"]
            if "ce" in aggregated else None,
            "test_order": order,
            "dev_order": sorted(aggregated, key=lambda s: aggregated[s]["dev_macro_f1"]["mean"], reverse=True)}
    if len(order) > 1:
        best["runner_up"] = order[1]
        best["runner_up_gain"] = (aggregated[order[1]]["macro_f1"]["mean"] - aggregated["ce"]["macro_f1"]["mean"]
                                  if "ce" in aggregated else None)
    bootstrap = None
    compare = order[0] if order[0] != "ce" else best.get("runner_up")
    if compare and "ce" in aggregated:
        seed = args.seeds[0]
        gold, ce_pred = read_predictions(args.runs / f"ce-seed{seed}")
        _, other = read_predictions(args.runs / f"{compare}-seed{seed}")
        bootstrap = {"strategy": compare, "seed": seed,
                     **paired_bootstrap(gold, ce_pred, other, runs[0]["labels"])}

    plot_path = args.out / "macro_f1_recall.png"
    plot(aggregated, baselines, plot_path)
    budget = (f"max_steps {args.max_steps}" if args.max_steps else f"{args.epochs:g} epochs") + \
        f", batch {args.batch_size}, lr {args.lr or base.training.learning_rate:g} " \
        f"(warmup {base.training.warmup_ratio:g}, linear decay, AdamW, weight decay {base.training.weight_decay:g}), " \
        f"max_length {args.max_length}, {runs[0]['steps']} optimizer steps per run"
    if args.init:
        starting = f"checkpoint `{args.init}` with its own tokenizer; new classification head"
    else:
        m = base.model
        shown_dir = tokenizer_dir.relative_to(ROOT) if tokenizer_dir.is_relative_to(ROOT) else tokenizer_dir
        starting = (f"a BERT encoder from scratch (hidden {m.get('hidden_size')}, {m.get('num_layers')} layers, "
                    f"{m.get('num_heads')} heads, intermediate {m.get('intermediate_size')}, "
                    f"max_position_embeddings {m.get('max_position_embeddings')}), identical initial weights "
                    f"for every row of a seed; WordPiece vocabulary of {args.vocab_size:,} trained once on the "
                    f"training texts (cached in `{shown_dir}`)")
    omp = os.environ.get("OMP_NUM_THREADS")
    runtime = time.perf_counter() - started_at
    result = {
        "command": (f"OMP_NUM_THREADS={omp} " if omp else "") + "python scripts/compare_imbalance.py"
                   + (" " + shlex.join(args.argv) if args.argv else ""),
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runtime_seconds": runtime,
        "machine": machine(),
        "settings": {"seeds": args.seeds, "epochs": args.epochs, "max_steps": args.max_steps,
                     "max_length": args.max_length, "batch_size": args.batch_size,
                     "learning_rate": args.lr or base.training.learning_rate, "init": args.init,
                     "model": {} if args.init else base.model, "vocab_size": None if args.init else args.vocab_size,
                     "base_config": str(Path(args.config).resolve().relative_to(ROOT))
                     if Path(args.config).resolve().is_relative_to(ROOT) else args.config,
                     "strategies": {s: STRATEGIES[s][1] for s in args.strategies},
                     "starting_point": starting, "budget": budget},
        "data": {"class_counts": counts, "train_examples": runs[0]["train_examples"],
                 "train_truncated": runs[0]["train_truncated"], "test_truncated": runs[0]["test_truncated"],
                 "truncation": truncation},
        "runs": runs, "aggregate": aggregated, "baselines": baselines, "best": best, "bootstrap": bootstrap,
        "plot": f"{args.out.name}/{plot_path.name}", "json": args.out.with_suffix(".json").name,
    }
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_report(args, result)
    print(f"best: {best['strategy']} (gain over ce {best['gain_over_ce']:+.4f} macro-F1); "
          f"{runtime:.0f} s in all")
    print(f"report: {args.out.with_suffix('.md')}")
    del torch
    return 0


if __name__ == "__main__":
    sys.exit(main())
