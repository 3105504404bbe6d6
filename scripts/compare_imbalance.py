"""Compare the imbalance remedies of ``nlu.tasks.classify`` on the shipped Rotten Tomatoes data (issue #5).

    OMP_NUM_THREADS=1 python scripts/compare_imbalance.py                       # defaults, one seed
    OMP_NUM_THREADS=1 python scripts/compare_imbalance.py --seeds 1 2 3         # mean ± std over seeds
    OMP_NUM_THREADS=1 python scripts/compare_imbalance.py --init runs/pretrain_news/model
    OMP_NUM_THREADS=1 python scripts/compare_imbalance.py --quick               # a 20-step smoke run
    python scripts/compare_imbalance.py --report-only                           # OUT/sweep.md from its JSON

The sweep tasks/sweeps/imbalance.yaml (ce, weighted_ce, focal, oversample, logit adjustment at
training or at prediction; every row the same model, seed and budget) through ``nlu.sweep``, plus
what is particular to this study: without ``--init`` the small encoder of
tasks/rotten_tomatoes_compare.yaml starts from scratch with a WordPiece vocabulary trained once on
the training texts and cached in the runs folder, and a TF-IDF (1–2 gram) + logistic regression
baseline (plain and class_weight="balanced") on the same split is reported as context. Writes
OUT/sweep.{md,json,png} (default OUT = reports/imbalance); runs go to RUNS/imbalance/<row>/seed-<k>.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nlu.data.classification import read_table
from nlu.evaluation.metrics import classification_scores
from nlu.reporting import command_line, rerender, table
from nlu.settings import load_settings
from nlu.sweep import load_sweep, render_sweep, run_sweep, write_sweep
from nlu.tokenizer import save_tokenizer, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "tasks" / "sweeps" / "imbalance.yaml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", help="nlu or transformers BERT checkpoint to start from (default: from scratch)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the sweep file's (42)")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-steps", type=int, default=0, help="optimizer steps per run (overrides --epochs)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, help="default: the base config's (1e-3)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="WordPiece vocabulary (from scratch only)")
    parser.add_argument("--strategies", nargs="+", help="rows of the sweep file to run (default: all; ce first)")
    parser.add_argument("--out", type=Path, help="report folder (default reports/imbalance)")
    parser.add_argument("--runs", type=Path, help="run folders go here (default runs)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 20 steps per run, under runs/imbalance_quick")
    parser.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF + logistic regression rows")
    parser.add_argument("--report-only", action="store_true", help="rewrite OUT/sweep.md from OUT/sweep.json")
    args = parser.parse_args(argv)
    args.max_steps = args.max_steps or (20 if args.quick else 0)
    args.runs = args.runs or ROOT / "runs"
    args.out = args.out or (args.runs / "sweeps" / "imbalance_quick" if args.quick else ROOT / "reports" / "imbalance")
    return args


def cached_tokenizer(train_path: str, vocab_size: int, folder: Path) -> Path:
    """Train the WordPiece vocabulary once; later invocations reuse it (retraining can break ties
    between equally frequent merges differently, so every row and rerun shares this one)."""
    target = folder / f"tokenizer-{vocab_size}"
    if not (target / "tokenizer.json").is_file():
        partial = folder / f".tokenizer-{vocab_size}.partial"
        save_tokenizer(train_tokenizer(iter([e.text for e in read_table(train_path)]), vocab_size=vocab_size), partial)
        os.replace(partial, target)
    return target


def tfidf_baselines(train_path: str, test_path: str) -> dict[str, dict]:
    """Context for the table: a linear model on word n-grams, plain and with balanced class weights."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, test = read_table(train_path), read_table(test_path)
    labels = sorted({e.label for e in train})
    results = {}
    for name, weight in (("TF-IDF 1–2-gram + LogReg", None), ("TF-IDF 1–2-gram + LogReg, class_weight=balanced",
                                                               "balanced")):
        started = time.perf_counter()
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        model = LogisticRegression(max_iter=2000, class_weight=weight, C=1.0)
        model.fit(vectorizer.fit_transform([e.text for e in train]), [e.label for e in train])
        predicted = model.predict(vectorizer.transform([e.text for e in test])).tolist()
        scores = classification_scores([e.label for e in test], predicted, labels)
        results[name] = {"test_macro_f1": scores["macro_f1"], "test_balanced_accuracy": scores["balanced_accuracy"],
                         **{f"test_recall[{label}]": scores["per_class"][label]["recall"] for label in labels},
                         "seconds": time.perf_counter() - started}
    return results


def render(results: dict) -> str:
    """The sweep's report with the baseline rows of this study after it."""
    baselines = results.get("baselines") or {}
    if not baselines:
        return render_sweep(results)
    columns = list(next(iter(baselines.values())))
    return render_sweep(results) + "\n".join([
        "", "## Context: a linear baseline on the same split", "",
        *table(["baseline", *columns], [[name, *(f"{row[key]:.4f}" if key != "seconds" else f"{row[key]:.0f}"
                                                for key in columns)] for name, row in baselines.items()]), ""])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        print(f"report: {rerender(args.out / 'sweep', render)}")
        return 0
    sweep = load_sweep(SWEEP)
    sweep.name += "_quick" if args.quick else ""
    sweep.seeds = args.seeds or sweep.seeds
    sweep.rows = {name: sweep.rows[name] for name in (args.strategies or sweep.rows)}
    data = load_settings(sweep.config, [], task="classify").data
    start = ({"init": args.init, "model": "{}"} if args.init  # the checkpoint's own architecture
             else {"data.tokenizer": str(cached_tokenizer(data["train"], args.vocab_size, args.runs / "sweeps"))})
    sweep.overrides |= start | {"data.max_length": args.max_length, "training.batch_size": args.batch_size,
                                "training.epochs": args.epochs, "training.max_steps": args.max_steps,
                                "training.progress": False} | (
        {"training.learning_rate": args.lr} if args.lr else {})
    results = run_sweep(sweep, "classify", args.runs / "sweeps") | {"command": command_line(argv and [__file__, *argv],
                                                                                            root=ROOT)}
    results["baselines"] = {} if args.no_baseline else tfidf_baselines(data["train"], data["test"])
    write_sweep(results, args.out)
    print(f"report: {rerender(args.out / 'sweep', render)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
