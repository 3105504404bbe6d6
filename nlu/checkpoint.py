"""``save_pretrained`` / ``from_pretrained``: ``config.json`` + ``model.safetensors``.

Loading is strict where strictness catches mistakes (a checkpoint of the same architecture must
match key for key and shape for shape) and lenient where the user means it: loading a
pretraining checkpoint into a classifier keeps the encoder and starts the new head fresh.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from nlu.config import EncoderConfig
from nlu.errors import CheckpointError, ConfigError
from nlu.files import atomic_path, write_text_atomic

if TYPE_CHECKING:
    from nlu.model.models import NluModel

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BACKBONE_PREFIX = "encoder."
CLASSIFIER_PREFIX = "classifier."

logger = logging.getLogger(__name__)


def save(model: "NluModel", directory: str | Path) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_NAME) as temporary:
        save_file(state, str(temporary), metadata={"format": "pt"})
    metadata = {"architecture": type(model).__name__, **model.config.to_dict()}
    write_text_atomic(directory / CONFIG_NAME, json.dumps(metadata, indent=2) + "\n")


def read_json_object(path: Path, hint: str) -> dict[str, Any]:
    """A JSON object from ``path``; every failure names the file (and line), ``hint`` says what was expected."""
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; {hint}") from None
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return values


def read_config(directory: str | Path) -> tuple[str | None, dict[str, Any]]:
    """The saved architecture name and the encoder options, with file-named errors."""
    if not Path(directory).is_dir():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    values = read_json_object(Path(directory) / CONFIG_NAME, f"a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    return values.pop("architecture", None), values


def architecture(directory: str | Path) -> str:
    name, _ = read_config(directory)
    if name is None:
        raise CheckpointError(f"{Path(directory) / CONFIG_NAME}: no 'architecture' entry; is this an nlu checkpoint?")
    return name


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for every kind of corruption
        raise CheckpointError(f"{path}: cannot be read as safetensors ({error})") from None


def load(model_class: type["NluModel"], directory: str | Path, config_overrides: dict[str, Any]) -> "NluModel":
    directory = Path(directory)
    saved_architecture, values = read_config(directory)
    config = config_from_dict({**values, **config_overrides}, directory / CONFIG_NAME)
    labels_changed = values.get("labels") != config.labels
    head_may_differ = saved_architecture != model_class.__name__ or labels_changed
    weights_path = directory / WEIGHTS_NAME
    return build_model(model_class, config, read_weights(weights_path), weights_path, head_may_differ, labels_changed)


def config_from_dict(values: dict[str, Any], source: Path) -> EncoderConfig:
    try:
        return EncoderConfig.from_dict(values, source=str(source))
    except ConfigError as error:
        raise CheckpointError(str(error)) from None


def build_model(
    model_class: type["NluModel"],
    config: EncoderConfig,
    state: dict[str, torch.Tensor],
    source: Path,
    head_may_differ: bool,
    labels_changed: bool = False,
) -> "NluModel":
    """Instantiate ``model_class`` and fill it from ``state``.

    The encoder (keys under ``encoder.``) must match exactly. Heads must match too unless
    ``head_may_differ`` (another architecture or other labels were saved): then heads the
    checkpoint lacks start fresh, listed in ``model.newly_initialized``, and extra ones are dropped.
    With ``labels_changed`` the classifier starts fresh even when its shape fits: its rows belong
    to other labels.
    """
    # Built on the meta device: no random numbers are drawn for weights about to be overwritten (a
    # 250k-row embedding would cost seconds and a second copy of itself); only fresh heads are drawn.
    with torch.device("meta"):
        model = model_class(config)
    expected = model.state_dict()
    problems, fresh = [], []
    for name, tensor in expected.items():
        strict = name.startswith(BACKBONE_PREFIX) or not head_may_differ
        if labels_changed and name.startswith(CLASSIFIER_PREFIX):
            fresh.append(name)
        elif name not in state:
            (problems if strict else fresh).append(f"missing key {name}" if strict else name)
        elif state[name].shape != tensor.shape:
            if strict:
                problems.append(f"key {name} has shape {tuple(state[name].shape)}, the model expects {tuple(tensor.shape)}")
            else:
                fresh.append(name)
    unexpected = [name for name in state if name not in expected]
    if not head_may_differ:
        problems.extend(f"unexpected key {name}" for name in unexpected)
    if problems:
        listed = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CheckpointError(f"{source} does not match {model_class.__name__}: {listed}")
    model.to_empty(device="cpu")
    model.load_state_dict({name: state[name].to(expected[name].dtype) for name in expected if name not in fresh},
                          strict=False, assign=True)
    model.init_weights(only=set(fresh))
    model.newly_initialized = fresh
    if fresh:
        logger.info("%s: freshly initialised (not in %s): %s", model_class.__name__, source, ", ".join(fresh))
    return model
