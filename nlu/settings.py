"""Run settings: a YAML task file, overridden from the command line, into dataclasses.

One mechanism for every command: ``nlu pretrain --config tasks/pretrain_news.yaml
training.max_steps=50 model.hidden_size=64``. Values after ``=`` are parsed as YAML, so
numbers, booleans and lists work as they would in the file. The resolved settings are saved
beside every run so a result can always be traced to its exact configuration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nlu.errors import ConfigError
from nlu.training.config import TrainingConfig

SECTIONS = ("task", "model", "data", "training", "init", "from_scratch")
T = TypeVar("T")


@dataclass
class RunSettings:
    task: str
    model: dict[str, Any] = field(default_factory=dict)
    """Encoder options (nlu.config.EncoderConfig) for a model built from scratch."""
    data: dict[str, Any] = field(default_factory=dict)
    """The task's data options; the task validates them into its own dataclass."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    init: str | None = None
    """Where fine-tuning starts: an nlu or transformers checkpoint directory, or none (random)."""
    from_scratch: bool = False
    """Take ``init``'s architecture and tokenizer but not its weights: the baseline that shows
    what pretraining buys."""
    source: str = "settings"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "model": self.model, "data": self.data,
                "training": dataclasses.asdict(self.training), "init": self.init,
                "from_scratch": self.from_scratch}

    def save(self, path: str | Path) -> None:
        from nlu.files import write_text_atomic

        write_text_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def apply_override(values: dict[str, Any], override: str) -> None:
    key, equals, raw = override.partition("=")
    if not equals or not key:
        raise ConfigError(f"override {override!r} must look like section.key=value, e.g. training.max_steps=100")
    *parents, leaf = key.split(".")
    node = values
    for parent in parents:
        node = node.setdefault(parent, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {parent!r} is not a section")
    node[leaf] = yaml.safe_load(raw) if raw else None


def load_settings(path: str | Path | None, overrides: list[str] = (), task: str | None = None) -> RunSettings:
    values: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: task file not found") from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise ConfigError(f"{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    for override in overrides:
        apply_override(values, override)
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; sections are {', '.join(SECTIONS)}")
    if task is not None:
        if values.get("task", task) != task:
            raise ConfigError(f"{source} is a {values['task']!r} task, not {task!r}")
        values["task"] = task
    if "task" not in values:
        raise ConfigError(f"{source}: missing 'task' (pretrain, ner or classify)")
    return RunSettings(
        task=values["task"],
        model=values.get("model") or {},
        data=values.get("data") or {},
        training=fill(TrainingConfig, values.get("training") or {}, f"{source}: training"),
        init=values.get("init"),
        from_scratch=bool(values.get("from_scratch", False)),
        source=source,
    )


def fill(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Build a dataclass from a mapping, naming unknown keys instead of ignoring them."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {unknown}; known: {sorted(known)}")
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    values = {key: coerce(value, types[key], f"{where}.{key}") for key, value in values.items()}
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"{where}: {error}") from None


def coerce(value: Any, declared: str, where: str) -> Any:
    """YAML reads ``5e-5`` (no dot) as a string; turn such strings into the declared number,
    and name the option when a value cannot be one."""
    kinds = {part.strip() for part in declared.split("|")}
    if not isinstance(value, str) or "str" in kinds or not kinds & {"int", "float"}:
        return value
    for kind in (int, float):
        if kind.__name__ in kinds:
            try:
                return kind(value)
            except ValueError:
                continue
    raise ConfigError(f"{where}: expected {declared}, got {value!r}")
