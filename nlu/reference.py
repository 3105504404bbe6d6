"""transformers' Trainer on the data and recipe of an nlu run: the reference that the comparisons
in scripts/ (vs_transformers, crosslingual, gpu_check) measure nlu against.

One implementation, so that every report compares against the same Trainer set-up: the
checkpoint's own tokenizer, labels on each word's first sub-token (``word_ids()``), AdamW
(fused, eps 1e-6, weight decay 0.01), linear warm-up over ``int(warmup_ratio * steps)`` steps
then linear decay, gradient clipping at 1.0, dev scored once per epoch with the best epoch
kept (``load_best_model_at_end``), and the test split scored by nlu's own metrics on word-level
tags, exactly as nlu's runs are scored. Inputs longer than ``max_length`` are truncated (the
Trainer has no windows): a word cut off is predicted ``O`` and so counts against the Trainer.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nlu.constants import IGNORE_INDEX
from nlu.data.classification import TextExample
from nlu.data.ner import NerSentence, label_list
from nlu.evaluation.metrics import classification_scores, entity_scores

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
RECIPE_OPTIONS = {"max_length": "data.max_length", "eval_batch_size": "data.eval_batch_size",
                  "batch_size": "training.batch_size", "learning_rate": "training.learning_rate",
                  "warmup_ratio": "training.warmup_ratio", "epochs": "training.epochs"}
"""The recipe both sides share, and the nlu option that holds each part of it."""


def recipe_overrides(recipe: Mapping[str, Any]) -> list[str]:
    """The nlu command-line overrides that give a run this recipe."""
    return [f"{RECIPE_OPTIONS[key]}={value}" for key, value in recipe.items() if key in RECIPE_OPTIONS]


def recipe_of(data, training) -> dict[str, Any]:
    """The recipe of a run: its data options (the task's dataclass, e.g. NerData, defaults filled)
    and its TrainingConfig."""
    sections = {"data": data, "training": training}
    return {key: getattr(sections[option.split(".")[0]], option.split(".")[1]) for key, option in RECIPE_OPTIONS.items()}


def ner_figures(gold: Sequence[list[str]], predicted: Sequence[list[str]]) -> dict[str, Any]:
    """The test figures the comparison reports print for NER: strict IOB2 entity scores."""
    scores = entity_scores(list(gold), list(predicted), mode="strict")
    micro, per_type = scores["averages"]["micro"], scores["per_class"]
    return {"f1": micro["f1"], "precision": micro["precision"], "recall": micro["recall"],
            "macro_f1": scores["averages"]["macro"]["f1"],
            "per_type_f1": {name: row["f1"] for name, row in per_type.items()},
            "per_type_support": {name: row["support"] for name, row in per_type.items()}}


def classification_figures(gold: Sequence[str], predicted: Sequence[str], labels: list[str]) -> dict[str, Any]:
    """The test figures the comparison reports print for classification, per-class recall included."""
    scores = classification_scores(list(gold), list(predicted), labels)
    return {key: scores[key] for key in ("macro_f1", "balanced_accuracy", "accuracy")} | {
        "recall": {label: row["recall"] for label, row in scores["per_class"].items()}}


def _ner_inputs(tokenizer, sentences: Sequence[NerSentence], ids: dict[str, int], max_length: int):
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


def trainer_finetune(task: str, checkpoint: str | Path, splits: Mapping[str, Sequence[NerSentence | TextExample]],
                     recipe: Mapping[str, Any], output_dir: str | Path, *, seed: int, bf16: bool = False,
                     cpu: bool = True, freeze_embeddings: bool = False) -> dict[str, Any]:
    """Fine-tune CHECKPOINT with transformers' Trainer on ``splits`` (train, dev, test) for TASK
    (``ner`` or ``classify``); ``recipe`` holds max_length, batch_size, eval_batch_size,
    learning_rate, warmup_ratio and epochs.

    Returns the training clock (``train_seconds``: the Trainer's construction and ``train()``, as
    nlu's loop clock counts its own set-up, steps, dev evaluations and saves), ``steps``, the
    best dev figure and its step, the real (non-pad) training tokens, the whole run's wall and CPU
    seconds, and ``test``: :func:`ner_figures` or :func:`classification_figures`.
    """
    import transformers

    transformers.logging.set_verbosity_error()
    started, cpu_started = time.perf_counter(), time.process_time()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    max_length = min(int(recipe["max_length"]),
                     transformers.AutoConfig.from_pretrained(str(checkpoint)).max_position_embeddings)

    class CountingTrainer(transformers.Trainer):
        """Counts the real (non-pad) tokens of every training batch."""

        tokens = 0

        def training_step(self, model, inputs, num_items_in_batch=None):
            self.tokens += int(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, num_items_in_batch)

    if task == "ner":
        labels = label_list(splits["train"])
        ids = {tag: index for index, tag in enumerate(labels)}
        encoded = {split: _ner_inputs(tokenizer, sentences, ids, max_length) for split, sentences in splits.items()}
        datasets = {split: rows for split, (rows, _) in encoded.items()}

        def score(logits: np.ndarray, split: str) -> dict[str, Any]:
            best = logits.argmax(-1)
            predicted = [[labels[best[row, position]] if position is not None else "O" for position in firsts]
                         for row, firsts in enumerate(encoded[split][1])]
            return ner_figures([s.tags for s in splits[split]], predicted)

        model_class, collator, select = (transformers.AutoModelForTokenClassification,
                                         transformers.DataCollatorForTokenClassification(tokenizer), "f1")
    elif task == "classify":
        from datasets import Dataset

        labels = sorted({example.label for example in splits["train"]})
        ids = {label: index for index, label in enumerate(labels)}
        datasets = {}
        for split, examples in splits.items():
            pairs = [e.text_pair for e in examples] if any(e.text_pair is not None for e in examples) else None
            rows = tokenizer([e.text for e in examples], pairs, truncation=True, max_length=max_length)
            datasets[split] = Dataset.from_dict({**{key: rows[key] for key in MODEL_INPUTS if key in rows},
                                                 "labels": [ids[e.label] for e in examples]})

        def score(logits: np.ndarray, split: str) -> dict[str, Any]:
            return classification_figures([e.label for e in splits[split]], [labels[i] for i in logits.argmax(-1)],
                                          labels)

        model_class, collator, select = (transformers.AutoModelForSequenceClassification,
                                         transformers.DataCollatorWithPadding(tokenizer), "macro_f1")
    else:
        raise ValueError(f"task must be ner or classify; got {task!r}")
    model = model_class.from_pretrained(str(checkpoint), num_labels=len(labels), id2label=dict(enumerate(labels)),
                                        label2id=ids)
    if freeze_embeddings:  # as nlu's training.freeze_embeddings: the word-embedding matrix only
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    steps = math.ceil(len(datasets["train"]) / recipe["batch_size"]) * recipe["epochs"]
    arguments = transformers.TrainingArguments(
        output_dir=str(Path(output_dir) / "transformers"),
        per_device_train_batch_size=recipe["batch_size"], per_device_eval_batch_size=recipe["eval_batch_size"],
        learning_rate=recipe["learning_rate"], num_train_epochs=recipe["epochs"], lr_scheduler_type="linear",
        warmup_steps=int(recipe["warmup_ratio"] * steps),  # nlu: int(warmup_ratio * total_steps)
        weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-6, max_grad_norm=1.0,
        optim="adamw_torch_fused", seed=seed, bf16=bf16, use_cpu=cpu, report_to="none",
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model=select, greater_is_better=True, logging_steps=10, dataloader_num_workers=0)
    train_started = time.perf_counter()
    trainer = CountingTrainer(model=model, args=arguments, data_collator=collator, train_dataset=datasets["train"],
                              eval_dataset=datasets["dev"], processing_class=tokenizer,
                              compute_metrics=lambda prediction: score(prediction.predictions, "dev"))
    trainer.train()
    train_seconds = time.perf_counter() - train_started
    evaluations = [entry for entry in trainer.state.log_history if f"eval_{select}" in entry]
    best = max(evaluations, key=lambda entry: entry[f"eval_{select}"]) if evaluations else {}
    trainer.compute_metrics = None  # it scores dev; test is scored below
    test = score(trainer.predict(datasets["test"]).predictions, "test")
    return {"train_seconds": train_seconds, "steps": trainer.state.global_step, "best_step": best.get("step"),
            "dev_best": best.get(f"eval_{select}"), "train_tokens": trainer.tokens,
            "run_seconds": time.perf_counter() - started, "run_cpu_seconds": time.process_time() - cpu_started,
            "test": test}
