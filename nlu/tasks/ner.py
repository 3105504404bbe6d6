"""Named-entity recognition: IOB2 data, sub-word alignment, windows, entity-level evaluation."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from nlu.data.ner import (
    NerSentence,
    check_label_sets,
    encode_ner,
    label_list,
    load_panx,
    merge_window_predictions,
    read_ner_file,
)
from nlu.errors import ConfigError
from nlu.evaluation.confusion import entity_confusion, save_confusion_reports, write_confusion_csv
from nlu.evaluation.metrics import entity_scores, scores_markdown, token_scores
from nlu.evaluation.report import write_run_report
from nlu.files import write_text_atomic
from nlu.model import ForTokenClassification
from nlu.settings import RunSettings, fill
from nlu.tasks.finetune import (
    choose_selection,
    finish_on_main_process,
    initial_model,
    model_input_length,
    pad_batch,
    predict_logits,
    save_input_settings,
    supervised_step,
)
from nlu.tokenizer import save_tokenizer
from nlu.training.loop import train


@dataclass
class NerData:
    train: str | None = "data/ner/wnut16/train.conll"
    dev: str | None = "data/ner/wnut16/dev.conll"
    """None: a seeded ``dev_fraction`` of the training sentences is held out as the dev set."""
    test: str | None = "data/ner/wnut16/test.conll"
    dev_fraction: float = 0.1
    panx_lang: str | None = None
    """Load PAN-X.<lang> (XTREME) instead of files: from the hub, or from ``local_dir`` offline."""
    local_dir: str | None = None
    repair: bool = False
    """Rewrite I-X tags that start an entity to B-X (with a warning) instead of rejecting the file."""
    tokenizer: str | None = None
    max_length: int = 128
    stride: int = 32
    label_all_subtokens: bool = False
    eval_batch_size: int = 64
    mode: str = "strict"
    """seqeval entity matching: strict IOB2 (default) or conlleval-like 'default'."""


def read_split(data: NerData, split: str) -> list[NerSentence]:
    if data.panx_lang:
        return load_panx(data.panx_lang, split, data.local_dir, repair=data.repair)
    return read_ner_file(getattr(data, split), repair=data.repair)


def hold_out(sentences: list[NerSentence], fraction: float, seed: int) -> tuple[list[NerSentence], list[NerSentence]]:
    """A seeded random ``fraction`` of the sentences (at least one) for dev; the rest, in order, for training."""
    if not 0 < fraction < 1:
        raise ConfigError(f"data.dev_fraction must be in (0, 1), got {fraction}")
    if len(sentences) < 2:
        raise ConfigError("cannot split a dev set off fewer than 2 training sentences; give data.dev")
    count = max(1, round(fraction * len(sentences)))
    chosen = set(random.Random(seed).sample(range(len(sentences)), count))
    return ([s for i, s in enumerate(sentences) if i not in chosen],
            [s for i, s in enumerate(sentences) if i in chosen])


def predict_tags(model: ForTokenClassification, tokenizer, sentences: Sequence[NerSentence], max_length: int,
                 stride: int, batch_size: int) -> tuple[list[list[str]], int]:
    """Word-level tags for every word of every sentence, and how many windows beyond one per
    sentence were needed. Nothing is cut: long sentences are covered by overlapping windows.

    With learned positions windows are at most ``max_position_embeddings`` long; sinusoidal and
    rotary models read ``max_length`` sub-tokens at once, however long they were trained on."""
    labels = model.config.labels
    max_length = model_input_length(model.config, max_length)
    unlabeled = [NerSentence(s.words, ["O"] * len(s.words), s.source, s.line) for s in sentences]
    windows = encode_ner(unlabeled, tokenizer, {label: i for i, label in enumerate(labels)}, max_length, stride)
    features = [{"input_ids": w.input_ids, "token_type_ids": w.token_type_ids} for w in windows]
    logits = predict_logits(model, features, tokenizer.pad_token_id, batch_size)
    merged = merge_window_predictions(windows, [row.argmax(-1) for row in logits], [len(s.words) for s in sentences])
    windowed = len(windows) - len({w.sentence_index for w in windows})
    return [[labels[i] for i in row] for row in merged], windowed


NER_METRICS = ("f1", "precision", "recall", "macro_f1")


class NerTask:
    def __init__(self, tokenizer, data: NerData, dev: list[NerSentence], max_length: int):
        self.tokenizer, self.data, self.dev, self.max_length = tokenizer, data, dev, max_length

    def collate(self, features: list[dict]) -> dict:
        return pad_batch(features, self.tokenizer.pad_token_id)

    def set_epoch(self, epoch: int) -> None:
        pass

    def training_step(self, model, batch):
        return supervised_step(model, batch)

    def evaluate(self, model: ForTokenClassification) -> dict[str, float]:
        predicted, _ = predict_tags(model, self.tokenizer, self.dev, self.max_length, self.data.stride,
                                    self.data.eval_batch_size)
        scores = entity_scores([s.tags for s in self.dev], predicted, mode=self.data.mode)
        micro = scores["averages"]["micro"]
        values = (micro["f1"], micro["precision"], micro["recall"], scores["averages"]["macro"]["f1"])
        return dict(zip(NER_METRICS, values))

    def save_artifacts(self, directory: Path) -> None:
        save_tokenizer(self.tokenizer, directory)
        save_input_settings(directory, max_length=self.max_length, stride=self.data.stride)


def evaluate_ner(model: ForTokenClassification, tokenizer, sentences: list[NerSentence], out_dir: Path,
                 data: NerData, title: str = "NER evaluation") -> dict[str, Any]:
    """Score ``sentences`` and write every table and figure of the NER report into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    max_length = model_input_length(model.config, data.max_length)
    predicted, windowed = predict_tags(model, tokenizer, sentences, max_length, data.stride, data.eval_batch_size)
    gold = [s.tags for s in sentences]
    strict = entity_scores(gold, predicted, mode="strict")
    default = entity_scores(gold, predicted, mode="default")
    tokens = token_scores(gold, predicted)
    flat_gold = [tag for row in gold for tag in row]
    flat_predicted = [tag for row in predicted for tag in row]
    save_confusion_reports(flat_gold, flat_predicted, list(model.config.labels), out_dir, "tags")
    confusion = entity_confusion(gold, predicted, mode=data.mode)
    save_confusion_reports(confusion.true_types, confusion.pred_types, confusion.labels, out_dir, "entities")
    write_confusion_csv(confusion.matrix, confusion.labels, out_dir / "entity_confusion.csv")
    results = {"entity_strict": strict, "entity_default": default, "token": tokens,
               "entity_outcomes": confusion.counts, "sentences": len(sentences),
               "words": len(flat_gold), "windowed_sentences": windowed, "max_length": max_length}
    write_text_atomic(out_dir / "metrics.json", json.dumps(results, indent=2))
    write_text_atomic(out_dir / "predictions.conll", "".join(
        "".join(f"{w}\t{g}\t{p}\n" for w, g, p in zip(s.words, s.tags, row)) + "\n"
        for s, row in zip(sentences, predicted)))
    lines = [
        f"# {title}",
        "",
        f"{len(sentences):,} sentences, {len(flat_gold):,} words; sentences longer than max_length={max_length} "
        f"sub-tokens were predicted in overlapping windows, {windowed} extra window(s) in all (no word is dropped).",
        "",
        f"Entity-level micro F1: **{strict['averages']['micro']['f1']:.4f}** (strict IOB2), "
        f"{default['averages']['micro']['f1']:.4f} (conlleval-like default mode).",
        "",
        "## Entities per type (seqeval, strict IOB2)",
        "",
        scores_markdown(strict, label_header="entity type"),
        "## Entity outcomes",
        "",
        "Each true and predicted span is paired at most once: exact = same span and type; "
        "type_confusion = same span, other type; boundary = overlapping, same type; missed = no "
        "overlapping prediction; spurious = no overlapping true entity.",
        "",
        "| outcome | count |",
        "|---|---|",
        *[f"| {name} | {count} |" for name, count in confusion.counts.items()],
        "",
        "![entity types, row-normalised](entities_confusion_true.png)",
        "",
        "## Tags (token level)",
        "",
        scores_markdown(tokens, label_header="tag"),
        "Confusion over tags: [raw](tags_confusion_raw.png) · [by row = recall](tags_confusion_true.png) · "
        "[by column = precision](tags_confusion_pred.png) · [over all](tags_confusion_all.png) "
        "(CSV beside each PNG).",
        "",
        "![tags, row-normalised](tags_confusion_true.png)",
        "",
    ]
    write_text_atomic(out_dir / "report.md", "\n".join(lines))
    return results


def load_data(data: NerData, seed: int) -> tuple[list[NerSentence], list[NerSentence], list[NerSentence]]:
    """Train, dev and test sentences; without a dev file, dev is split off the training data."""
    if data.train is None and not data.panx_lang:
        raise ConfigError("data.train must name a training file (or set data.panx_lang)")
    if data.test is None and not data.panx_lang:
        raise ConfigError("data.test must name a test file (or set data.panx_lang)")
    train_sentences, test = read_split(data, "train"), read_split(data, "test")
    if data.dev is None and not data.panx_lang:
        train_sentences, dev = hold_out(train_sentences, data.dev_fraction, seed)
    else:
        dev = read_split(data, "dev")
    check_label_sets(train_sentences, dev, "dev")
    check_label_sets(train_sentences, test, "test")
    return train_sentences, dev, test


def run(settings: RunSettings) -> dict[str, Any]:
    data = fill(NerData, settings.data, f"{settings.source}: data")
    train_sentences, dev, test = load_data(data, settings.training.seed)
    labels = label_list(train_sentences)
    model, tokenizer = initial_model(settings, ForTokenClassification, labels, data.tokenizer)
    max_length = model_input_length(model.config, data.max_length)
    windows = encode_ner(train_sentences, tokenizer, {label: i for i, label in enumerate(labels)}, max_length,
                         data.stride, data.label_all_subtokens)
    features = [{"input_ids": w.input_ids, "token_type_ids": w.token_type_ids, "labels": w.labels} for w in windows]
    choose_selection(settings.training, "f1", NER_METRICS)
    task = NerTask(tokenizer, data, dev, max_length)
    result = train(task, model, features, settings.training)
    output_dir = Path(settings.training.output_dir)

    def finish() -> dict[str, Any]:
        best = ForTokenClassification.from_pretrained(result.best_model or result.final_model)
        test_results = evaluate_ner(best, tokenizer, test, output_dir / "test", data, "NER test-set evaluation")
        summary = {
            "train_sentences": len(train_sentences), "train_windows": len(windows), "labels": labels,
            "best_step": result.state.best_step, "dev_f1": result.state.best_metric,
            "test_f1": test_results["entity_strict"]["averages"]["micro"]["f1"],
            "test_macro_f1": test_results["entity_strict"]["averages"]["macro"]["f1"],
            "train_seconds": result.state.train_seconds, "steps": result.state.step,
            "tokens_per_second": result.state.tokens_seen / max(result.state.train_seconds, 1e-9),
        }
        write_run_report(output_dir, settings, summary, "NER fine-tuning", "f1")
        return summary

    return finish_on_main_process(output_dir, finish)

