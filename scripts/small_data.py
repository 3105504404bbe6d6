"""The shipped recipes on small slices of the shipped data, against all-O / majority baselines.

    python scripts/small_data.py            # recipe check -> reports/small_data.{md,json}
    python scripts/small_data.py --sweep    # the learning-rate grid behind nlu.recipes -> reports/small_data_sweep.{md,json}

A user with a few hundred sentences gets the shipped task files and nothing else, so the check
runs tasks/wnut16_ner.yaml and tasks/rotten_tomatoes.yaml as they are, from the model they name
(tasks/pretrain_news.yaml's, pretrained once into --pretrained and reused), on a seeded
300-sentence slice of the WNUT-16 training file and an 800-text slice of the Rotten Tomatoes
training file (dev and test files as shipped), with ``training.learning_rate=auto``
(nlu.recipes: the rate, and enough epochs for a small set). The sweep
runs a learning-rate grid for two starts, from scratch (the task files' 4x256 encoder with a
WordPiece vocabulary trained on the shipped corpus) and from that pretrained 2x128 model, with
early stopping off, so that the rate, not the stopping rule, is what is measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nlu.data.classification import read_table  # noqa: E402
from nlu.data.ner import read_ner_file  # noqa: E402
from nlu.evaluation.metrics import classification_scores, entity_scores  # noqa: E402
from nlu.reporting import command_line, machine, machine_line, table, write_report  # noqa: E402
from nlu.runs import run  # noqa: E402
from nlu.settings import load_settings  # noqa: E402
from nlu.tokenizer import save_tokenizer, train_tokenizer  # noqa: E402

NER_TASK, CLASSIFY_TASK = "tasks/wnut16_ner.yaml", "tasks/rotten_tomatoes.yaml"
NER_TRAIN, CLASSIFY_TRAIN = "data/ner/wnut16/train.conll", "data/classification/rotten_tomatoes/train.csv"
NER_SLICE, CLASSIFY_SLICE, SEED = 300, 800, 13
CORPUS = ["data/corpus/news.txt", "data/corpus/tweets.txt"]
SWEEP_RATES = (1e-4, 3e-4, 1e-3, 3e-3)


def ner_slice(size: int, path: Path) -> None:
    sentences = read_ner_file(ROOT / NER_TRAIN)
    chosen = sorted(random.Random(SEED).sample(range(len(sentences)), size))
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(sentences[i].words, sentences[i].tags)) + "\n"
                            for i in chosen), encoding="utf-8")


def classify_slice(size: int, path: Path) -> None:
    with open(ROOT / CLASSIFY_TRAIN, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    chosen = sorted(random.Random(SEED).sample(range(len(rows)), size))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": rows[i]["text"], "label": rows[i]["label"]} for i in chosen)


def corpus_tokenizer(work: Path) -> Path:
    target = work / "tokenizer"
    if not (target / "tokenizer.json").is_file():
        save_tokenizer(train_tokenizer([ROOT / f for f in CORPUS], vocab_size=8000), target)
    return target


def baselines(ner_test: str, classify_train: Path, classify_test: str) -> dict[str, float]:
    """All-O tagging and majority-class prediction, scored like the models."""
    test = read_ner_file(ROOT / ner_test)
    all_o = entity_scores([s.tags for s in test], [["O"] * len(s.tags) for s in test])["averages"]["micro"]["f1"]
    majority = Counter(e.label for e in read_table(classify_train)).most_common(1)[0][0]
    gold = [e.label for e in read_table(ROOT / classify_test)]
    scores = classification_scores(gold, [majority] * len(gold), sorted(set(gold)))
    return {"ner_test_f1_all_o": all_o, "classify_test_macro_f1_majority": scores["macro_f1"],
            "classify_test_accuracy_majority": scores["accuracy"], "majority_class": majority}


def finetune(task_file: str, task: str, overrides: dict, output_dir: Path, force: bool = True) -> dict:
    """One run through the runs layer; ``force=False`` reuses a finished run with the same settings."""
    overrides = {**overrides, "training.output_dir": str(output_dir)}
    settings = load_settings(ROOT / task_file, [f"{k}={json.dumps(v)}" for k, v in overrides.items()], task=task)
    record = run(settings, force=force)
    return record.summary


def headline(task: str, summary: dict) -> dict:
    keys = ("test_f1", "dev_f1") if task == "ner" else ("test_macro_f1", "test_accuracy", "dev_macro_f1")
    return {key: summary.get(key) for key in (*keys, "steps", "train_seconds", "warning")}


def pretrained_model(folder: Path) -> tuple[Path, float]:
    """The shipped pretraining recipe (tasks/pretrain_news.yaml) run once into ``folder``, reused
    after; its model directory and the seconds its training took (from its own summary)."""
    summary = finetune("tasks/pretrain_news.yaml", "pretrain", {}, folder, force=False)
    return folder / "model", summary["train_seconds"]


def recipe_check(work: Path, ner_train: Path, classify_train: Path, init: Path) -> list[dict]:
    """The task files as shipped, from the shipped pretrained model, with ``training.learning_rate=auto``."""
    rows = []
    for task, task_file, train, size, data_key in (("ner", NER_TASK, ner_train, NER_SLICE, "sentences"),
                                                   ("classify", CLASSIFY_TASK, classify_train, CLASSIFY_SLICE, "texts")):
        overrides = {"data.train": str(train), "init": str(init), "training.learning_rate": "auto"}
        summary = finetune(task_file, task, overrides, work / f"recipe-{task}")
        rows.append({"task": task, "task_file": task_file, "train": f"{size} {data_key}",
                     "learning_rate": summary["recipe"], **headline(task, summary)})
    return rows


def sweep(work: Path, ner_train: Path, classify_train: Path, init: Path, tokenizer: Path) -> list[dict]:
    """The learning-rate grid, early stopping off, from scratch (the task files' 4x256) and from
    ``init``; then NER from ``init`` with more epochs, since 100 steps leave every rate at all-O."""
    scratch, pretrained = {"data.tokenizer": str(tokenizer)}, {"init": str(init)}
    both = (("ner", NER_TASK, ner_train), ("classify", CLASSIFY_TASK, classify_train))
    grid = [  # (start, tasks, overrides, rates); below 3e-4 a short run from a checkpoint stalls (issue #22)
        ("scratch 4x256", both, scratch, SWEEP_RATES),
        ("pretrained 2x128", both, pretrained, SWEEP_RATES[1:]),
        *[(f"pretrained 2x128, {epochs} epochs", both[:1], {**pretrained, "training.epochs": epochs}, (1e-3, 3e-3))
          for epochs in (30, 60)],
    ]
    rows = []
    for start, tasks, start_overrides, rates in grid:
        for task, task_file, train in tasks:
            for lr in rates:
                overrides = {"data.train": str(train), "training.learning_rate": lr,
                             "training.early_stopping_patience": 0, **start_overrides}
                folder = f"sweep-{task}-{start.replace(',', '').replace(' ', '-')}-{lr:g}"
                result = finetune(task_file, task, overrides, work / folder, force=False)
                rows.append({"start": start, "task": task, "learning_rate": lr, **headline(task, result)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def fmt(value) -> str:
    return "—" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def render(result: dict) -> str:
    """reports/small_data*.md from its JSON (nlu.reporting.write_report)."""
    base, sweep_mode = result["baselines"], result["mode"] == "sweep"
    lines = [f"# {'Learning-rate sweep' if sweep_mode else 'Shipped recipes'} on small slices of the shipped data", "",
             f"Command: `{result['command']}`, {result['wall_seconds']} s (finished runs in --work are reused; the "
             f"runs' own training took {sum(row['train_seconds'] for row in result['runs']):.0f} s). "
             f"The pretrained start `{result['pretrained']}` "
             f"is tasks/pretrain_news.yaml as shipped ({result['pretraining_seconds']} s of training, run once and "
             f"reused).", "",
             f"Machine: {machine_line(result['machine'])}.", "",
             f"Slices (seed {SEED}): {result['slices']['ner']} sentences of {NER_TRAIN}, {result['slices']['classify']} "
             f"texts of {CLASSIFY_TRAIN}; dev and test files as shipped. Baselines on test: all-O NER F1 "
             f"{base['ner_test_f1_all_o']:.4f}; majority class ({base['majority_class']}) macro-F1 "
             f"{base['classify_test_macro_f1_majority']:.4f}, accuracy {base['classify_test_accuracy_majority']:.4f}.", ""]
    first = ["start"] if sweep_mode else ["train"]
    header = ["task", *first, "learning rate", "test F1 (NER) / macro-F1", "test accuracy", "steps", "train s",
              "test predictions"]
    rows = [[row["task"], row["start" if sweep_mode else "train"],
             f"{row['learning_rate']:g}" if sweep_mode else row["learning_rate"].split(":")[0].removeprefix("learning rate "),
             fmt(row.get("test_f1", row.get("test_macro_f1"))), fmt(row.get("test_accuracy")), row["steps"],
             f"{row['train_seconds']:.0f}", "one label only" if "on test:" in (row.get("warning") or "") else "varied"]
            for row in result["runs"]]
    lines += table(header, rows, "llrrrrrl") + [""]
    if not sweep_mode:
        lines += ["`training.learning_rate=auto` (nlu.recipes) chose:", "",
                  *[f"- {row['task']}: {row['learning_rate']}" for row in result["runs"]], ""]
    if not sweep_mode:
        lines += [f"- warning, {row['task']}: {row['warning']}" for row in result["runs"] if row.get("warning")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="run the learning-rate grid instead of the recipe check")
    parser.add_argument("--work", default="runs/small_data", help="run folders (default runs/small_data)")
    parser.add_argument("--out", default="reports", help="where the report goes (default reports/)")
    parser.add_argument("--pretrained", default="runs/small_data/pretrain",
                        help="run folder of tasks/pretrain_news.yaml: reused when finished there, else run into it")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ner_train, classify_train = work / f"ner_train_{NER_SLICE}.conll", work / f"classify_train_{CLASSIFY_SLICE}.csv"
    ner_slice(NER_SLICE, ner_train)
    classify_slice(CLASSIFY_SLICE, classify_train)
    base = baselines("data/ner/wnut16/test.conll", classify_train, "data/classification/rotten_tomatoes/test.csv")
    init, pretraining_seconds = pretrained_model(Path(args.pretrained))
    if args.sweep:
        rows = sweep(work, ner_train, classify_train, init, corpus_tokenizer(work))
    else:
        rows = recipe_check(work, ner_train, classify_train, init)
    result = {"mode": "sweep" if args.sweep else "recipes", "command": command_line(), "machine": machine(),
              "wall_seconds": round(time.perf_counter() - started), "pretrained": str(init),
              "pretraining_seconds": round(pretraining_seconds),
              "slices": {"ner": NER_SLICE, "classify": CLASSIFY_SLICE, "seed": SEED}, "baselines": base, "runs": rows}
    stem = Path(args.out) / ("small_data_sweep" if args.sweep else "small_data")
    print(f"wrote {write_report(stem, result, render)}")


if __name__ == "__main__":
    main()
