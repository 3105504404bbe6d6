"""Weights in and out of transformers' BERT classes.

Import reads a transformers checkpoint directory (config.json + safetensors or .bin, sharded
or not) without instantiating transformers' model; export builds the transformers model and
lets it load the converted weights strictly, so any mismatch fails here, not in a user's server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors.torch import load_file

from nlu.checkpoint import build_model, read_json_object
from nlu.config import EncoderConfig
from nlu.errors import CheckpointError, ConfigError
from nlu.tokenizer import save_tokenizer
from nlu.model.models import (
    EncoderModel,
    ForPreTraining,
    ForSequenceClassification,
    ForTokenClassification,
    NluModel,
)

HF_ARCHITECTURES: dict[str, type[NluModel]] = {
    "BertModel": EncoderModel,
    "BertForPreTraining": ForPreTraining,
    "BertForMaskedLM": ForPreTraining,
    "BertForSequenceClassification": ForSequenceClassification,
    "BertForTokenClassification": ForTokenClassification,
}
EXPORT_ARCHITECTURES = {
    EncoderModel: "BertModel",
    ForPreTraining: "BertForPreTraining",
    ForSequenceClassification: "BertForSequenceClassification",
    ForTokenClassification: "BertForTokenClassification",
}
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
NLU_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}
CLASSIFIERS = (ForSequenceClassification, ForTokenClassification)


def module_pairs(num_layers: int) -> list[tuple[str, str]]:
    """(nlu module, transformers module) pairs whose ``weight``/``bias`` map one to one."""
    pairs = [
        ("encoder.embeddings.word_embeddings", "bert.embeddings.word_embeddings"),
        ("encoder.embeddings.position_embeddings", "bert.embeddings.position_embeddings"),
        ("encoder.embeddings.token_type_embeddings", "bert.embeddings.token_type_embeddings"),
        ("encoder.embeddings.norm", "bert.embeddings.LayerNorm"),
        ("pooler.dense", "bert.pooler.dense"),
        ("mlm_head.dense", "cls.predictions.transform.dense"),
        ("mlm_head.norm", "cls.predictions.transform.LayerNorm"),
        ("nsp_head", "cls.seq_relationship"),
        ("classifier.linear", "classifier"),
    ]
    for i in range(num_layers):
        ours, theirs = f"encoder.stack.layers.{i}", f"bert.encoder.layer.{i}"
        pairs += [
            (f"{ours}.attention.out", f"{theirs}.attention.output.dense"),
            (f"{ours}.attention_norm", f"{theirs}.attention.output.LayerNorm"),
            (f"{ours}.feed_forward.up", f"{theirs}.intermediate.dense"),
            (f"{ours}.feed_forward.down", f"{theirs}.output.dense"),
            (f"{ours}.feed_forward_norm", f"{theirs}.output.LayerNorm"),
        ]
    return pairs


def normalize_hf_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Give every key the ``bert.`` prefix of the task models (a bare ``BertModel`` saves
    without it) and the modern LayerNorm names (old TF conversions say gamma/beta)."""
    normalized = {}
    for key, tensor in state.items():
        if not key.startswith(("bert.", "cls.", "classifier.")):
            key = "bert." + key
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        normalized[key] = tensor
    return normalized


def renamed(state: dict[str, torch.Tensor], names: Iterable[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """The weights and biases of modules named ``old`` in STATE under ``new``, for each (old, new) pair present."""
    return {f"{new}.{parameter}": state[f"{old}.{parameter}"] for old, new in names for parameter in ("weight", "bias")
            if f"{old}.{parameter}" in state}


def hf_state_to_nlu(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    state = normalize_hf_keys(state)
    converted = renamed(state, ((theirs, ours) for ours, theirs in module_pairs(num_layers)))
    if "cls.predictions.bias" in state:
        converted["mlm_head.bias"] = state["cls.predictions.bias"]
    for i in range(num_layers):
        projections = [f"bert.encoder.layer.{i}.attention.self.{name}" for name in ("query", "key", "value")]
        for parameter in ("weight", "bias"):
            parts = [state.get(f"{projection}.{parameter}") for projection in projections]
            if all(part is not None for part in parts):
                converted[f"encoder.stack.layers.{i}.attention.qkv.{parameter}"] = torch.cat(parts)
    return converted


def nlu_state_to_hf(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    converted = renamed(state, module_pairs(num_layers))
    if "mlm_head.bias" in state:
        converted["cls.predictions.bias"] = state["mlm_head.bias"]
        converted["cls.predictions.decoder.bias"] = state["mlm_head.bias"]
        converted["cls.predictions.decoder.weight"] = state["encoder.embeddings.word_embeddings.weight"]
    for i in range(num_layers):
        for parameter in ("weight", "bias"):
            fused = state[f"encoder.stack.layers.{i}.attention.qkv.{parameter}"]
            for name, part in zip(("query", "key", "value"), fused.chunk(3)):
                converted[f"bert.encoder.layer.{i}.attention.self.{name}.{parameter}"] = part
    return converted


def config_from_bert(bert: dict[str, Any], source: Path, with_labels: bool) -> EncoderConfig:
    if bert.get("model_type", "bert") != "bert":
        raise CheckpointError(f"{source}: model_type is {bert.get('model_type')!r}; only BERT checkpoints can be imported")
    if bert.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"{source}: position_embedding_type {bert['position_embedding_type']!r} is not supported")
    if bert.get("hidden_act", "gelu") not in HF_ACTIVATIONS:
        raise CheckpointError(f"{source}: hidden_act {bert.get('hidden_act')!r} is not supported ({sorted(HF_ACTIVATIONS)})")
    id2label = bert.get("id2label") or {}
    labels = [id2label[key] for key in sorted(id2label, key=int)] if with_labels else []
    try:
        return EncoderConfig(
            vocab_size=bert["vocab_size"],
            hidden_size=bert["hidden_size"],
            num_layers=bert["num_hidden_layers"],
            num_heads=bert["num_attention_heads"],
            intermediate_size=bert["intermediate_size"],
            max_position_embeddings=bert["max_position_embeddings"],
            type_vocab_size=bert["type_vocab_size"],
            hidden_dropout=bert["hidden_dropout_prob"],
            attention_dropout=bert["attention_probs_dropout_prob"],
            layer_norm_eps=bert["layer_norm_eps"],
            activation=HF_ACTIVATIONS[bert.get("hidden_act", "gelu")],
            pad_token_id=bert.get("pad_token_id") or 0,
            initializer_range=bert.get("initializer_range", 0.02),
            classifier_dropout=bert.get("classifier_dropout"),
            labels=labels,
        )
    except KeyError as missing:
        raise CheckpointError(f"{source}: missing BERT option {missing}") from None
    except ConfigError as error:
        raise CheckpointError(f"{source}: {error}") from None


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, pytorch_model.bin, or their sharded forms with an index file."""
    for weights, index in (("model.safetensors", "model.safetensors.index.json"),
                           ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (directory / index).is_file():
            shards = sorted(set(json.loads((directory / index).read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(read_weight_file(directory / shard))
            return state
        if (directory / weights).is_file():
            return read_weight_file(directory / weights)
    raise CheckpointError(f"{directory}: no model.safetensors or pytorch_model.bin found")


def read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt files raise many error types; name the file in every case
        raise CheckpointError(f"{path}: cannot be read ({error})") from None


def from_transformers(
    source: str | Path | Any, model_class: type[NluModel] | None = None, **config_overrides
) -> NluModel:
    """Load a transformers BERT checkpoint directory, or a transformers BERT model object (a
    benchmark's twin of the same weights), as an nlu model.

    Without ``model_class`` the architecture recorded in its config is used. Asking for
    another class (e.g. a token classifier on a ``BertModel`` checkpoint, with ``labels=``)
    keeps the encoder and starts the new head fresh.
    """
    from transformers import PreTrainedModel

    in_memory = isinstance(source, PreTrainedModel)
    if in_memory:
        config_path = directory = Path(f"<{type(source).__name__} object>")
        bert = {**source.config.to_dict(), "architectures": [type(source).__name__]}
    else:
        directory = Path(source)
        config_path = directory / "config.json"
        bert = read_json_object(config_path, f"is {directory} a transformers checkpoint directory?")
    saved_class = HF_ARCHITECTURES.get((bert.get("architectures") or ["BertModel"])[0])
    if model_class is None:
        if saved_class is None:
            raise CheckpointError(f"{config_path}: architecture {bert.get('architectures')} has no nlu counterpart; "
                                  f"pass model_class= (one of {sorted(HF_ARCHITECTURES)})")
        model_class = saved_class
    config = config_from_bert(bert, config_path, with_labels=saved_class in CLASSIFIERS)
    try:
        config = EncoderConfig.from_dict({**config.to_dict(), **config_overrides}, source=str(config_path))
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    # an object's tensors are copied to the CPU, as a checkpoint's are read: the two models must not share
    # (and train) one set of weights
    weights = {key: value.detach().to("cpu", copy=True) for key, value in source.state_dict().items()} if in_memory \
        else read_hf_weights(directory)
    state = hf_state_to_nlu(weights, config.num_layers)
    saved_labels = config_from_bert(bert, config_path, with_labels=True).labels if saved_class in CLASSIFIERS else []
    labels_changed = "labels" in config_overrides and list(config_overrides["labels"]) != saved_labels
    # A BertModel saved without its pooler (multilingual-e5, sentence encoders) starts that head fresh.
    pooler_missing = not any(name.startswith("pooler.") for name in state)
    head_may_differ = saved_class is not model_class or labels_changed or pooler_missing
    return build_model(model_class, config, state, directory, head_may_differ, labels_changed)


def to_bert_config(config: EncoderConfig, architecture: str):
    from transformers import BertConfig

    labels = {"id2label": dict(enumerate(config.labels)), "label2id": {label: i for i, label in enumerate(config.labels)}}
    return BertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        hidden_act=NLU_ACTIVATIONS[config.activation],
        hidden_dropout_prob=config.hidden_dropout,
        attention_probs_dropout_prob=config.attention_dropout,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        pad_token_id=config.pad_token_id,
        classifier_dropout=config.classifier_dropout,
        architectures=[architecture],
        **(labels if config.labels else {}),
    )


def to_transformers(model: NluModel, directory: str | Path, tokenizer=None):
    """Write ``model`` as a transformers BERT checkpoint (and the tokenizer, if given) and
    return the transformers model, loaded strictly from the converted weights."""
    import transformers

    config = model.config
    architecture = EXPORT_ARCHITECTURES.get(type(model))
    if architecture is None:
        raise ConfigError(f"{type(model).__name__} has no transformers BERT counterpart")
    if config.position_encoding != "learned":
        raise ConfigError(f"transformers' BERT has learned absolute positions only; position_encoding="
                          f"{config.position_encoding!r} cannot be exported")
    if config.norm_placement != "post":
        raise ConfigError("transformers' BERT has post-LN layers only; a pre-LN model cannot be exported to it")
    if config.pooling != "cls" and not isinstance(model, ForTokenClassification):
        raise ConfigError(f"transformers' BERT pools with the [CLS] pooler only; pooling={config.pooling!r} cannot be exported")
    hf_model = getattr(transformers, architecture)(to_bert_config(config, architecture))
    hf_state = nlu_state_to_hf(model.state_dict(), config.num_layers)
    if architecture == "BertModel":
        hf_state = {key.removeprefix("bert."): tensor for key, tensor in hf_state.items()}
    hf_model.load_state_dict(hf_state, strict=True)
    hf_model.eval()
    hf_model.save_pretrained(directory)
    if tokenizer is not None:
        save_tokenizer(tokenizer, directory)  # a class name transformers 4.x and 5.x both resolve
    return hf_model
