"""Text classification (single texts or pairs) with the imbalance remedies users reach for.

Remedies, each a task option: class-weighted cross-entropy, focal loss, oversampling with a
weighted sampler, and logit adjustment by class priors (in the training loss, or subtracted
at prediction). Model selection uses macro-F1 (or balanced accuracy), never plain accuracy,
which a majority-class guesser scores well on.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlu.data.classification import (
    LabelMap,
    TextExample,
    check_labels,
    encode_classification,
    read_table,
    sampler_weights,
    stratified_split,
)
from nlu.errors import ConfigError
from nlu.evaluation.confusion import save_confusion_reports
from nlu.evaluation.metrics import classification_scores, scores_markdown
from nlu.evaluation.report import write_run_report
from nlu.files import write_text_atomic
from nlu.model import ForSequenceClassification
from nlu.settings import RunSettings, fill
from nlu.tasks.finetune import (
    choose_selection,
    finish_on_main_process,
    initial_model,
    model_input_length,
    pad_batch,
    predict_logits,
    save_input_settings,
)
from nlu.tokenizer import save_tokenizer
from nlu.training.losses import build_loss, class_weights, logit_adjustment
from nlu.training.loop import train

ADJUSTMENT_FILE = "logit_adjustment.json"
CLASSIFY_METRICS = ("macro_f1", "balanced_accuracy", "accuracy", "mcc", "weighted_f1")


@dataclass
class ClassifyData:
    train: str = "data/classification/rotten_tomatoes/train.csv"
    dev: str | None = "data/classification/rotten_tomatoes/dev.csv"
    """None splits a stratified dev set off train (dev_fraction)."""
    test: str | None = "data/classification/rotten_tomatoes/test.csv"
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    dev_fraction: float = 0.1
    tokenizer: str | None = None
    max_length: int = 128
    eval_batch_size: int = 64
    loss: str = "ce"
    """ce, weighted_ce (balanced weights unless class_weights is given) or focal."""
    class_weights: list[float] | None = None
    focal_gamma: float = 2.0
    oversample: bool = False
    """Draw training examples with probability ∝ count(label)^-oversample_power."""
    oversample_power: float = 1.0
    logit_adjustment: str = "none"
    """none, train (add tau·log prior to logits in the loss) or predict (subtract it at prediction)."""
    logit_adjustment_tau: float = 1.0

    def __post_init__(self) -> None:
        if self.logit_adjustment not in ("none", "train", "predict"):
            raise ConfigError(f"data.logit_adjustment must be none, train or predict; got {self.logit_adjustment!r}")


def read_examples(data: ClassifyData, path: str, require_label: bool = True) -> list[TextExample]:
    return read_table(path, data.text_column, data.text_pair_column, data.label_column, require_label)


def prediction_adjustment(model_dir: Path) -> torch.Tensor | None:
    """The prior correction saved with a model trained with logit_adjustment=predict."""
    path = Path(model_dir) / ADJUSTMENT_FILE
    return torch.tensor(json.loads(path.read_text())["subtract"]) if path.exists() else None


def predict_probabilities(model: ForSequenceClassification, tokenizer, examples: list[TextExample],
                          max_length: int, batch_size: int, adjustment: torch.Tensor | None) -> tuple[np.ndarray, int]:
    """Class probabilities per example, and how many inputs were longer than max_length
    (classification reads the first max_length tokens; the count is reported, not hidden)."""
    label_map = LabelMap(list(model.config.labels))
    unlabeled = [TextExample(e.text, e.text_pair, None, e.source, e.line) for e in examples]
    features, truncated = encode_classification(unlabeled, tokenizer, label_map,
                                                model_input_length(model.config, max_length))
    logits = torch.tensor(np.stack(predict_logits(model, features, tokenizer.pad_token_id, batch_size)))
    if adjustment is not None:
        logits = logits - adjustment
    return logits.softmax(-1).numpy(), truncated


class ClassifyTask:
    def __init__(self, tokenizer, data: ClassifyData, dev: list[TextExample], label_map: LabelMap,
                 train_label_ids: list[int], max_length: int):
        self.tokenizer, self.data, self.dev, self.label_map, self.max_length = tokenizer, data, dev, label_map, max_length
        counts = np.bincount(train_label_ids, minlength=len(label_map))
        # Given weights always reach build_loss, which refuses them for plain 'ce' rather than drop them.
        weight = None
        if data.class_weights is not None:
            weight = torch.tensor(data.class_weights, dtype=torch.float32)
            if len(weight) != len(label_map):
                raise ConfigError(f"data.class_weights has {len(weight)} values for {len(label_map)} labels "
                                  f"{label_map.names}")
        elif data.loss == "weighted_ce":
            weight = class_weights(train_label_ids, len(label_map))
        self.loss = build_loss(data.loss, weight=weight, gamma=data.focal_gamma)
        adjustment = logit_adjustment(np.maximum(counts, 1), data.logit_adjustment_tau)
        self.train_adjustment = adjustment if data.logit_adjustment == "train" else None
        self.predict_adjustment = adjustment if data.logit_adjustment == "predict" else None
        self.sampling_weights = (sampler_weights(train_label_ids, len(label_map), data.oversample_power)
                                 if data.oversample else None)

    def collate(self, features: list[dict]) -> dict:
        return pad_batch(features, self.tokenizer.pad_token_id)

    def set_epoch(self, epoch: int) -> None:
        pass

    def training_step(self, model, batch):
        labels = batch.pop("labels")
        logits = model(**batch).logits
        if self.train_adjustment is not None:
            logits = logits + self.train_adjustment.to(logits.device)
        self.loss.to(logits.device)
        return self.loss(logits.float(), labels), {"tokens": int(batch["attention_mask"].sum())}

    def evaluate(self, model: ForSequenceClassification) -> dict[str, float]:
        probabilities, _ = predict_probabilities(model, self.tokenizer, self.dev, self.max_length,
                                                 self.data.eval_batch_size, self.predict_adjustment)
        predicted = [self.label_map.to_name(i) for i in probabilities.argmax(-1)]
        scores = classification_scores([e.label for e in self.dev], predicted, self.label_map.names)
        return {key: scores[key] for key in CLASSIFY_METRICS}

    def save_artifacts(self, directory: Path) -> None:
        save_tokenizer(self.tokenizer, directory)
        save_input_settings(directory, max_length=self.max_length)
        if self.predict_adjustment is not None:
            write_text_atomic(directory / ADJUSTMENT_FILE, json.dumps({"subtract": self.predict_adjustment.tolist()}))


def evaluate_classification(model: ForSequenceClassification, tokenizer, examples: list[TextExample], out_dir: Path,
                            max_length: int, batch_size: int, adjustment: torch.Tensor | None,
                            title: str = "Classification evaluation") -> dict[str, Any]:
    """Score ``examples`` and write metrics, confusion matrices (CSV + PNG), predictions and report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = list(model.config.labels)
    check_labels(examples, LabelMap(labels), "the evaluation data")
    probabilities, truncated = predict_probabilities(model, tokenizer, examples, max_length, batch_size, adjustment)
    predicted = [labels[i] for i in probabilities.argmax(-1)]
    gold = [e.label for e in examples]
    scores = classification_scores(gold, predicted, labels)
    save_confusion_reports(gold, predicted, labels, out_dir, "labels")
    results = {"scores": scores, "examples": len(examples), "truncated": truncated,
               "class_counts": dict(Counter(gold))}
    write_text_atomic(out_dir / "metrics.json", json.dumps(results, indent=2))
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["source", "line", "label", "predicted", *[f"p({label})" for label in labels]])
    for example, guess, row in zip(examples, predicted, probabilities):
        writer.writerow([example.source, example.line, example.label, guess, *[f"{p:.4f}" for p in row]])
    write_text_atomic(out_dir / "predictions.csv", table.getvalue())
    counts = ", ".join(f"{label} {results['class_counts'].get(label, 0)}" for label in labels)
    lines = [
        f"# {title}", "",
        f"{len(examples):,} examples ({counts}); {truncated} longer than max_length={max_length} were read "
        f"up to that length.", "",
        f"Macro-F1 **{scores['macro_f1']:.4f}**, balanced accuracy {scores['balanced_accuracy']:.4f}, "
        f"accuracy {scores['accuracy']:.4f}, MCC {scores['mcc']:.4f}.", "",
        scores_markdown(scores, label_header="class"),
        "Confusion matrices: [raw](labels_confusion_raw.png) · [by row = recall](labels_confusion_true.png) · "
        "[by column = precision](labels_confusion_pred.png) · [over all](labels_confusion_all.png) "
        "(CSV beside each PNG).", "",
        "![raw counts](labels_confusion_raw.png) ![row-normalised](labels_confusion_true.png)", "",
    ]
    write_text_atomic(out_dir / "report.md", "\n".join(lines))
    return results


def load_data(data: ClassifyData, seed: int) -> tuple[list[TextExample], list[TextExample], list[TextExample], LabelMap]:
    train_examples = read_examples(data, data.train)
    if data.dev is None:
        train_examples, dev = stratified_split(train_examples, data.dev_fraction, seed)
    else:
        dev = read_examples(data, data.dev)
    test = read_examples(data, data.test) if data.test else []
    label_map = LabelMap.from_examples(train_examples)
    check_labels(dev, label_map, "dev")
    check_labels(test, label_map, "test")
    return train_examples, dev, test, label_map


def run(settings: RunSettings) -> dict[str, Any]:
    data = fill(ClassifyData, settings.data, f"{settings.source}: data")
    train_examples, dev, test, label_map = load_data(data, settings.training.seed)
    model, tokenizer = initial_model(settings, ForSequenceClassification, label_map.names, data.tokenizer)
    max_length = model_input_length(model.config, data.max_length)
    features, truncated = encode_classification(train_examples, tokenizer, label_map, max_length)
    choose_selection(settings.training, "macro_f1", CLASSIFY_METRICS)
    task = ClassifyTask(tokenizer, data, dev, label_map, [f["label"] for f in features], max_length)
    result = train(task, model, features, settings.training)
    output_dir = Path(settings.training.output_dir)

    def finish() -> dict[str, Any]:
        best_dir = result.best_model or result.final_model
        best = ForSequenceClassification.from_pretrained(best_dir)
        summary: dict[str, Any] = {
            "train_examples": len(train_examples), "train_truncated": truncated, "labels": label_map.names,
            "class_counts": dict(Counter(e.label for e in train_examples)), "best_step": result.state.best_step,
            f"dev_{settings.training.select_metric}": result.state.best_metric, "steps": result.state.step,
            "train_seconds": result.state.train_seconds,
            "tokens_per_second": result.state.tokens_seen / max(result.state.train_seconds, 1e-9),
        }
        if test:
            test_results = evaluate_classification(best, tokenizer, test, output_dir / "test", max_length,
                                                   data.eval_batch_size, prediction_adjustment(best_dir),
                                                   "Classification test-set evaluation")
            scores = test_results["scores"]
            summary |= {"test_macro_f1": scores["macro_f1"], "test_balanced_accuracy": scores["balanced_accuracy"],
                        "test_accuracy": scores["accuracy"],
                        **{f"test_recall[{label}]": scores["per_class"][label]["recall"] for label in label_map.names}}
        write_run_report(output_dir, settings, summary, "Classification fine-tuning", settings.training.select_metric)
        return summary

    return finish_on_main_process(output_dir, finish)
