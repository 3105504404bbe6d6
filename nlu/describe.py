"""Every option a task file takes, described from the dataclasses that validate it.

``nlu config show TASK_FILE`` reads the same classes the settings are filled into
(EncoderConfig, the task's data options, TrainingConfig, RunSettings), so the list cannot drift
from what validation accepts. A field's meaning is the string literal written right after it in
the class body, the convention of this code base, read with ``ast`` from the source.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from pathlib import Path
from typing import Any

import yaml

from nlu.config import EncoderConfig
from nlu.runs import task_entry
from nlu.errors import ConfigError
from nlu.settings import RunSettings, load_settings, read_yaml_file
from nlu.training.config import TrainingConfig

TOP_LEVEL = ("init", "from_scratch", "framework")
WIDTH = 100


def field_docs(cls: type) -> dict[str, str]:
    """{field: its docstring as plain text (whitespace collapsed, no reST quotes)} for the fields that have one."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str)):
            docs[node.target.id] = " ".join(following.value.value.replace("``", "").split())
    return docs


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    type: str
    default: Any
    meaning: str


def options_of(cls: type, names: tuple[str, ...] | None = None) -> list[Option]:
    docs = field_docs(cls)
    options = []
    for f in dataclasses.fields(cls):
        if names is not None and f.name not in names:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        options.append(Option(f.name, str(f.type), default, docs.get(f.name, "")))
    return options


def format_value(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "(required)"
    if dataclasses.is_dataclass(value):
        return "(section)"
    return "null" if value is None else yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...")


def section_lines(title: str, prefix: str, options: list[Option], file_values: dict[str, Any]) -> list[str]:
    lines = ["", title]
    for option in options:
        head = f"  {prefix}{option.name}: {option.type} = {format_value(option.default)}"
        if option.name in file_values:
            head += f"   (this file: {format_value(file_values[option.name])})"
        lines.append(head)
        if option.meaning:
            lines += textwrap.wrap(option.meaning, WIDTH, initial_indent="      ", subsequent_indent="      ",
                                   break_on_hyphens=False)
    return lines


def describe_task_file(path: str | Path) -> str:
    """The text ``nlu config show`` prints: every section of the file's task, every option."""
    values = read_yaml_file(Path(path), "task file")  # read as nlu reads it: YAML 1.2, `no` is a word
    if values.get("task") == "sweep":
        raise ConfigError(f"{path}: a sweep file; nlu config show describes task files, such as its config "
                          f"({values.get('config')})")
    settings = load_settings(path)  # the file must be valid before it is described
    entry = task_entry(settings.task)
    lines = [f"{path}: task {settings.task!r}. Set any option in the file or on the command line as "
             f"section.key=value; 'this file' marks the values {Path(path).name} sets."]
    lines += section_lines("top level", "", options_of(RunSettings, TOP_LEVEL), values)
    lines += section_lines("model  (nlu.config.EncoderConfig; with init, these override that checkpoint's options)",
                           "model.", options_of(EncoderConfig), values.get("model") or {})
    lines += section_lines(f"data  ({entry.data_options.__module__}.{entry.data_options.__name__})", "data.",
                           options_of(entry.data_options), values.get("data") or {})
    lines += section_lines("training  (nlu.training.config.TrainingConfig)", "training.", options_of(TrainingConfig),
                           values.get("training") or {})
    return "\n".join(lines)
