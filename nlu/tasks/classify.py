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
from typing import Any, ClassVar, get_args

import numpy as np
import torch

from nlu.data.classification import (
    LabelMap,
    TextExample,
    check_labels,
    check_several_classes,
    check_text_column,
    encode_classification,
    read_table,
    sampler_weights,
    stratified_split,
    warn_doubtful_labels,
)
from nlu.data.splits import Splits, check_fractions
from nlu.errors import ConfigError
from nlu.evaluation.confusion import save_confusion_reports
from nlu.evaluation.metrics import classification_scores, classification_summary, prediction_collapse, scores_markdown
from nlu.evaluation.report import collapse_warning, confusion_links, composition_markdown, split_composition
from nlu.evaluation.report import split_label, write_run_report
from nlu.files import write_text_atomic
from nlu.model import ForSequenceClassification
from nlu.settings import RunSettings, fill
from nlu.tasks.finetune import FineTuningTask, choose_selection, finish_on_main_process, initial_model, model_input_length
from nlu.tasks.finetune import early_stop, predict_logits, resolve_recipe, save_input_settings
from nlu.tokenizer import save_tokenizer
from nlu.training.losses import LossKind, build_loss, class_weights, logit_adjustment
from nlu.training.loop import distributed_state, train

ADJUSTMENT_FILE = "logit_adjustment.json"
CLASSIFY_METRICS = ("macro_f1", "balanced_accuracy", "accuracy", "mcc", "weighted_f1")


@dataclass
class ClassifyData:
    train: str = "data/classification/rotten_tomatoes/train.csv"
    """Training file: CSV, TSV or JSONL with a text column and a label column."""
    dev: str | None = "data/classification/rotten_tomatoes/dev.csv"
    """None splits a stratified dev set off train (dev_fraction)."""
    test: str | None = "data/classification/rotten_tomatoes/test.csv"
    """None: no test set, unless test_fraction splits one off train."""
    text_column: str = "text"
    """Column holding the text."""
    text_pair_column: str | None = None
    """Column holding the second text of a pair; None for single texts."""
    label_column: str = "label"
    """Column holding the label."""
    dev_fraction: float = 0.1
    """Share of train split off (stratified) as dev when dev is None."""
    test_fraction: float | None = None
    """Share of train split off (stratified) as test when test is None."""
    split_seed: int = 0
    """Seed of the splits made from data.train. Not the training seed, so that runs with several
    training seeds are scored on the same dev and test examples."""
    tsv_quotes: bool = False
    """Read quotes in .tsv files as CSV-style quoting; by default a TSV quote is an ordinary character."""
    allow_single_class: bool = False
    """Train even if every training example has the same label (refused by default)."""
    tokenizer: str | int | None = None
    """A tokenizer folder (default: the one saved with init; ./2024 for a folder named by digits), or for
    a model from scratch a vocabulary size: WordPiece of that size trained on the training texts."""
    max_length: int = 128
    """Sub-tokens per example, [CLS] and [SEP] included; longer texts are truncated (and counted in the report)."""
    eval_batch_size: int = 64
    """Examples per batch when predicting dev and test."""
    loss: str = "ce"
    """ce, weighted_ce (balanced weights unless class_weights is given) or focal."""
    class_weights: list[float] | None = None
    """Loss weight per class, in label order (weighted_ce, focal); None: balanced weights for weighted_ce."""
    focal_gamma: float = 2.0
    """Focusing exponent of the focal loss; 0 is plain cross-entropy."""
    oversample: bool = False
    """Draw training examples with probability ∝ count(label)^-oversample_power."""
    oversample_power: float = 1.0
    """1 draws every class equally often, 0 keeps the data's proportions (with oversample)."""
    logit_adjustment: str = "none"
    """none, train (add tau·log prior to logits in the loss) or predict (subtract it at prediction)."""
    logit_adjustment_tau: float = 1.0
    """Scale tau of the log-prior logit adjustment."""

    def __post_init__(self) -> None:
        if self.loss not in get_args(LossKind):
            raise ConfigError(f"data.loss must be {', '.join(get_args(LossKind))}; got {self.loss!r}")
        if self.logit_adjustment not in ("none", "train", "predict"):
            raise ConfigError(f"data.logit_adjustment must be none, train or predict; got {self.logit_adjustment!r}")


def reading_settings(data: ClassifyData) -> dict[str, Any]:
    """How the files are read (columns, TSV quoting); saved beside the classifier, so that
    ``nlu evaluate`` reads a test file as training read its files."""
    return {"text_column": data.text_column, "text_pair_column": data.text_pair_column,
            "label_column": data.label_column, "tsv_quotes": data.tsv_quotes}


def read_examples(data: ClassifyData, path: str, require_label: bool = True) -> list[TextExample]:
    return read_table(path, require_label=require_label, **reading_settings(data))


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


class ClassifyTask(FineTuningTask):
    def __init__(self, tokenizer, data: ClassifyData, dev: list[TextExample], label_map: LabelMap,
                 train_label_ids: list[int], max_length: int):
        super().__init__(tokenizer, dev, max_length)
        self.data, self.label_map = data, label_map
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
        # Each class's loss weight, for the run summary: balanced weights can differ 200-fold.
        self.class_weights = None if weight is None else dict(zip(label_map.names, map(float, weight)))
        self.loss = build_loss(data.loss, weight=weight, gamma=data.focal_gamma)
        adjustment = logit_adjustment(np.maximum(counts, 1), data.logit_adjustment_tau)
        self.train_adjustment = adjustment if data.logit_adjustment == "train" else None
        self.predict_adjustment = adjustment if data.logit_adjustment == "predict" else None
        self.sampling_weights = (sampler_weights(train_label_ids, len(label_map), data.oversample_power)
                                 if data.oversample else None)

    def training_step(self, model, batch):
        labels = batch.pop("labels")
        logits = model(**batch).logits
        if self.train_adjustment is not None:
            logits = logits + self.train_adjustment.to(logits.device)
        self.loss.to(logits.device)
        return self.loss(logits.float(), labels), {"tokens": batch["attention_mask"].sum()}

    def evaluate(self, model: ForSequenceClassification) -> dict[str, float]:
        probabilities, _ = predict_probabilities(model, self.tokenizer, self.dev, self.max_length,
                                                 self.data.eval_batch_size, self.predict_adjustment)
        predicted = [self.label_map.to_name(i) for i in probabilities.argmax(-1)]
        collapse = prediction_collapse(predicted)
        scores = classification_scores([e.label for e in self.dev], predicted, self.label_map.names)
        return {key: scores[key] for key in CLASSIFY_METRICS} | ({"warning": collapse} if collapse else {})

    def save_artifacts(self, directory: Path) -> None:
        save_tokenizer(self.tokenizer, directory)
        save_input_settings(directory, max_length=self.max_length, **reading_settings(self.data))
        if self.predict_adjustment is not None:
            write_text_atomic(directory / ADJUSTMENT_FILE, json.dumps({"subtract": self.predict_adjustment.tolist()}))


def evaluate_classification(model: ForSequenceClassification, tokenizer, examples: list[TextExample], out_dir: Path,
                            max_length: int, batch_size: int, adjustment: torch.Tensor | None,
                            title: str = "Classification evaluation", split: str = "evaluation") -> dict[str, Any]:
    """Score ``examples`` and write metrics, confusion matrices (CSV + PNG), predictions and report.md.
    ``split`` names the examples ("test") in titles, with their files."""
    labels = list(model.config.labels)
    check_labels(examples, LabelMap(labels), "the evaluation data")
    probabilities, truncated = predict_probabilities(model, tokenizer, examples, max_length, batch_size, adjustment)
    return write_classification_evaluation(examples, probabilities, labels, out_dir, max_length, truncated, title, split)


def write_classification_evaluation(examples: list[TextExample], probabilities: np.ndarray, labels: list[str],
                                    out_dir: Path, max_length: int, truncated: int, title: str,
                                    split: str) -> dict[str, Any]:
    """The classification report of ``probabilities`` (examples, labels), whichever model made them
    (nlu's, or transformers' Trainer in nlu.reference): metrics, confusion matrices, predictions, report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    predicted = [labels[i] for i in probabilities.argmax(-1)]
    gold = [e.label for e in examples]
    scores = classification_scores(gold, predicted, labels)
    name = split_label(split, [e.source for e in examples])
    save_confusion_reports(gold, predicted, labels, out_dir, "labels", name)
    composition = split_composition(name, len(examples), Counter(gold), labels)
    results = {"scores": scores, "examples": len(examples), "truncated": truncated,
               "class_counts": dict(Counter(gold)), "composition": composition,
               "warning": prediction_collapse(predicted)}
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
        composition_markdown([composition]),
        *([f"**Warning: {results['warning']}.**", ""] if results["warning"] else []),
        f"Macro-F1 **{scores['macro_f1']:.4f}** over the {len(scores['per_class'])} classes in the gold labels or "
        f"predictions, balanced accuracy (= macro recall, over the classes with gold examples) "
        f"{scores['balanced_accuracy']:.4f}, accuracy {scores['accuracy']:.4f}, MCC {scores['mcc']:.4f}.", "",
        scores_markdown(scores, label_header="class"),
        confusion_links("labels", "Confusion matrices"), "",
        "![raw counts](labels_confusion_raw.png) ![row-normalised](labels_confusion_true.png)", "",
    ]
    write_text_atomic(out_dir / "report.md", "\n".join(lines))
    return results


@dataclass
class ClassifySplits(Splits):
    """Examples per split, the label set, and how splits were made, for the report."""

    label_map: LabelMap
    unit: ClassVar[str] = "examples"


def load_data(data: ClassifyData) -> ClassifySplits:
    """Train, dev and test examples. A split without a file is drawn from data.train, class by
    class with data.split_seed (dev: dev_fraction; test: test_fraction)."""
    if data.test is not None and data.test_fraction is not None:
        raise ConfigError("data.test names a test file and data.test_fraction asks to split one off data.train; "
                          "give one of them (data.test=null to split)")
    fractions = {name: fraction for name, fraction in (("dev", data.dev_fraction), ("test", data.test_fraction))
                 if getattr(data, name) is None and fraction is not None}
    check_fractions(fractions)  # before reading: a bad fraction is a settings error
    parts, made = stratified_split(read_examples(data, data.train), fractions, data.split_seed, data.train)
    dev = parts["dev"] if "dev" in parts else read_examples(data, data.dev)
    test = parts["test"] if "test" in parts else read_examples(data, data.test) if data.test else []
    check_text_column(parts["train"], data.text_column)
    warn_doubtful_labels(parts["train"])
    label_map = LabelMap.from_examples(parts["train"])
    if not data.allow_single_class:
        check_several_classes(parts["train"], label_map)
    check_labels(dev, label_map, "dev")
    check_labels(test, label_map, "test")
    return ClassifySplits(parts["train"], dev, test, made, label_map)


def run(settings: RunSettings) -> dict[str, Any]:
    data = fill(ClassifyData, settings.data, f"{settings.source}: data")
    splits = load_data(data)
    train_examples, dev, test, label_map = splits.train, splits.dev, splits.test, splits.label_map
    model, tokenizer = initial_model(settings, ForSequenceClassification, label_map.names, data.tokenizer,
                                     train_examples)
    max_length = model_input_length(model.config, data.max_length)
    features, truncated = encode_classification(train_examples, tokenizer, label_map, max_length)
    choose_selection(settings.training, "macro_f1", CLASSIFY_METRICS)
    recipe = resolve_recipe(settings, model, len(features))
    task = ClassifyTask(tokenizer, data, dev, label_map, [f["label"] for f in features], max_length)
    result = train(task, model, features, settings.training)
    output_dir = Path(settings.training.output_dir)

    def finish() -> dict[str, Any]:
        best_dir = result.best_model or result.final_model
        # The test set is scored on the device the run trained on (a GPU when there is one), in fp32.
        best = ForSequenceClassification.from_pretrained(best_dir).to(distributed_state(settings.training).device)
        summary: dict[str, Any] = {
            "train_examples": len(train_examples), "train_truncated": truncated, "labels": label_map.names,
            "class_counts": dict(Counter(e.label for e in train_examples)), "best_step": result.state.best_step,
            f"dev_{settings.training.select_metric}": result.state.best_metric, "steps": result.state.step,
            "train_seconds": result.state.train_seconds,
            "tokens_per_second": result.state.tokens_seen / max(result.state.train_seconds, 1e-9),
            **early_stop(result, settings.training),
            **({"class_weights": task.class_weights} if task.class_weights else {}),
        }
        compositions = [split_composition(split_label("dev", [e.source for e in dev]), len(dev),
                                          Counter(e.label for e in dev), label_map.names)]
        test_warning = None
        if test:
            test_results = evaluate_classification(best, tokenizer, test, output_dir / "test", max_length,
                                                   data.eval_batch_size, prediction_adjustment(best_dir),
                                                   "Classification test-set evaluation", "test")
            scores = test_results["scores"]
            test_warning = test_results["warning"]
            compositions.append(test_results["composition"])
            summary |= classification_summary(scores, "test")
        summary["warning"] = collapse_warning([entry.get("warning") for entry in result.state.history], test_warning)
        summary["recipe"] = recipe
        summary["composition"] = compositions
        summary |= splits.summary()
        splits.save(output_dir)
        write_run_report(output_dir, settings, summary, "Classification fine-tuning", settings.training.select_metric)
        return summary

    return finish_on_main_process(output_dir, finish)
