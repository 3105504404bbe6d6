"""Run settings: a YAML task file, overridden from the command line, into dataclasses.

One mechanism for every command: ``nlu pretrain --config tasks/pretrain_news.yaml
training.max_steps=50 model.hidden_size=64``. Values after ``=`` are parsed as YAML, so
numbers, booleans and lists work as they would in the file. The resolved settings are saved
beside every run so a result can always be traced to its exact configuration.

YAML 1.1 reads ``no``, ``off``, ``yes`` and ``on`` as booleans, which would turn
``mixed_precision: no`` into ``False``; nlu reads YAML with only ``true``/``false`` as booleans
(as YAML 1.2 does), and an option declared as a boolean accepts yes/no/on/off as words.
Every value of every section goes through one coercion, ``coerce``, so ``1e-12`` (a string to
YAML) becomes a float wherever a float is declared and ``1.5`` is refused where an integer is.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from nlu.config import EncoderConfig
from nlu.errors import ConfigError
from nlu.files import write_text_atomic
from nlu.options import coerce, fill, suggestion
from nlu.training.config import TrainingConfig

MADE_BY = "# made by: "
ESCAPED_LINE_BREAKS = {ord(character): repr(character)[1:-1] for character in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}
"""Every character YAML or Python ends a line at, written as its escape: a comment stays one line."""
SECTIONS = ("task", "model", "data", "training", "init", "from_scratch", "framework")
COMMAND_LINE = "command line"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's booleans and integers: only true/false are booleans (``no`` stays
    the word "no"), ``010`` is ten (not octal 8) and ``1:30`` is text (not 90 in base 60);
    ``1_000``, ``0x1F`` and ``0b101`` read as before, and floats as PyYAML reads them (``1e-5``,
    without a dot, stays text, which every number option coerces)."""


_CORE_SCHEMA = {  # tag → (pattern, the characters a match can start with)
    "tag:yaml.org,2002:bool": (r"true|True|TRUE|false|False|FALSE", "tTfF"),
    "tag:yaml.org,2002:int": (r"[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)", "-+0123456789"),
}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in _CORE_SCHEMA]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, (_pattern, _first) in _CORE_SCHEMA.items():
    for _character in _first:  # before PyYAML's float resolver: "5" is an int, not a float
        _Loader.yaml_implicit_resolvers.setdefault(_character, []).insert(0, (_tag, re.compile(f"^(?:{_pattern})$")))


def _core_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    return sign * int(digits, {"0b": 2, "0o": 8, "0x": 16}.get(digits[:2], 10))


_Loader.add_constructor("tag:yaml.org,2002:int", _core_int)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 — a SafeLoader subclass


def parse_value(raw: str) -> Any:
    """A value written on the command line, as the YAML it is (3, null, [a, b]); empty is null, and
    one YAML would read as a comment ("#") is the text written, never null."""
    return raw if raw.lstrip().startswith("#") else parse_yaml(raw) if raw else None


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
    framework: str = "nlu"
    """Who trains: nlu, or ``transformers`` — transformers' Trainer on the same records and recipe
    (nlu.reference), the yardstick for nlu's own runs on the user's data."""
    source: str = "settings"
    origins: dict[str, str] = field(default_factory=dict)
    """Where each option given came from ("section.key" → the task file or "command line"), so an
    error names the place the user has to edit."""

    def where(self, section: str) -> Callable[[str], str]:
        """For ``fill``: the origin of ``section.key``, as it appears in error messages."""
        return lambda key: f"{self.origins.get(f'{section}.{key}', self.source)}: {section}.{key}"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "model": self.model, "data": self.data,
                "training": dataclasses.asdict(self.training), "init": self.init,
                "from_scratch": self.from_scratch, "framework": self.framework}

    def save(self, path: str | Path, made_by: str | None = None) -> None:
        """MADE_BY, the command that started the run, heads the file as a comment: the file is read
        back as settings, and a report on models trained from this run can say how it was made."""
        header = MADE_BY + made_by.translate(ESCAPED_LINE_BREAKS) + "\n" if made_by else ""  # one comment line
        write_text_atomic(path, header + yaml.safe_dump(self.to_dict(), sort_keys=False))


def made_by(path: str | Path) -> str | None:
    """The command a settings file was saved with (:meth:`RunSettings.save`), if it says."""
    first = Path(path).read_text(encoding="utf-8-sig").partition("\n")[0]
    return first.removeprefix(MADE_BY) if first.startswith(MADE_BY) else None


def section_hint(name: str) -> str:
    """For an option written without its section (``label_column=x``): where it would go."""
    sections = {"model": EncoderConfig, "training": TrainingConfig}
    section = next((section for section, options in sections.items()
                    if name in {option.name for option in dataclasses.fields(options)}), None)
    # The data options are the task's, unknown here: the form is said, not a guess at the section.
    return f" (an option is written section.key: {section}.{name}?)" if section else \
        f" (an option is written section.key: data.{name}, if it is a data option of the task)"


def apply_override(values: dict[str, Any], override: str, origins: dict[str, str]) -> None:
    key, equals, raw = override.partition("=")
    if not equals or not key:
        raise ConfigError(f"override {override!r} must look like section.key=value, e.g. training.max_steps=100")
    *parents, leaf = key.split(".")
    node = values
    for parent in parents:
        node = node.setdefault(parent, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {parent!r} is not a section")
    try:
        node[leaf] = parse_value(raw)
    except yaml.YAMLError as error:
        raise ConfigError(f"{COMMAND_LINE}: override {override!r} is not valid YAML "
                          f"({getattr(error, 'problem', None) or error}); quote the value or fix its brackets") from None
    origins[key] = COMMAND_LINE


def option_lines(path: Path) -> dict[str, int]:
    """The line of each ``section.key`` written in a (valid) task file, so that an error in an
    option names the file and line it is written on."""
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)
    if not isinstance(root, yaml.MappingNode):
        return {}
    return {f"{section.value}.{key.value}": key.start_mark.line + 1 for section, options in root.value
            if isinstance(options, yaml.MappingNode) for key, _ in options.value}


def read_yaml_file(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping from ``path``, with file:line for a syntax error."""
    try:
        values = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a {what}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    return values


def load_settings(path: str | Path | None, overrides: list[str] = (), task: str | None = None) -> RunSettings:
    values: dict[str, Any] = {}
    source = COMMAND_LINE
    if path is not None:
        source = str(path)
        values = read_yaml_file(Path(path), "task file")
    lines = option_lines(Path(path)) if path is not None else {}
    origins = {f"{section}.{key}": f"{source}:{lines[f'{section}.{key}']}" if f"{section}.{key}" in lines else source
               for section, options in values.items() if isinstance(options, dict) for key in options}
    for override in overrides:
        apply_override(values, override, origins)
    for name in sorted(set(values) - set(SECTIONS)):
        given_by = COMMAND_LINE if any(origins.get(key) == COMMAND_LINE for key in origins
                                       if key == name or key.startswith(f"{name}.")) else source
        raise ConfigError(f"{given_by}: unknown section {name!r}{suggestion(name, SECTIONS) or section_hint(name)}; "
                          f"sections are {', '.join(SECTIONS)}")
    for section in ("model", "data", "training"):
        if not isinstance(values.get(section) or {}, dict):
            raise ConfigError(f"{source}: {section} must be a mapping of options, got {values[section]!r}")
    if task is not None:
        if values.get("task", task) != task:
            raise ConfigError(f"{source} is a {values['task']!r} task, not {task!r}")
        values["task"] = task
    if "task" not in values:
        raise ConfigError(f"{source}: missing 'task' (pretrain, ner or classify)")
    settings = RunSettings(task=values["task"], model=values.get("model") or {}, data=values.get("data") or {},
                           init=values.get("init"), framework=values.get("framework", "nlu"), source=source,
                           origins=origins)
    settings.training = fill(TrainingConfig, values.get("training") or {}, settings.where("training"))
    settings.from_scratch = coerce(values.get("from_scratch", False), "bool", f"{source}: from_scratch")
    if settings.init is not None and not isinstance(settings.init, str):
        raise ConfigError(f"{source}: init must be a checkpoint directory or hub id, got {settings.init!r}")
    return settings
