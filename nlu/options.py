"""Options from YAML or the command line into dataclasses: the one coercion every section uses.

Below everything else (it needs only the errors), so the encoder's config, the training options
and every task's data options validate the same way: unknown keys named, numbers written the
way YAML leaves them as strings (``1e-12``) turned into numbers, booleans as words.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable
from typing import Any, Callable, TypeVar

from nlu.errors import ConfigError

T = TypeVar("T")


def fill(cls: type[T], values: dict[str, Any], where: str | Callable[[str], str]) -> T:
    """Build a dataclass from a mapping, naming unknown keys instead of ignoring them.

    ``where`` names the section in messages: a string such as ``"tasks/x.yaml: data"``, or (from
    ``RunSettings.where``) a function of the key that says whether that key came from the task
    file or from the command line."""
    name_of = _namer(where)
    values = coerce_options(cls, values, where)
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"{name_of('')[:-1]}: {error}") from None
    except ConfigError as error:
        raise _located(error, values, name_of) from None


def _located(error: ConfigError, keys: Iterable[str], name_of: Callable[[str], str]) -> ConfigError:
    """A dataclass's own check names the option (``data.scheme must be ...``): the same error with
    where the option was written (``tasks/x.yaml:7: data.scheme must be ...``) in front of it."""
    message = str(error)
    for key in keys:
        place = name_of(key)
        label = place.rpartition(": ")[2]
        if re.match(rf"{re.escape(label)}\b", message) and place != label:
            return ConfigError(place + message[len(label):])
    return error


def coerce_options(cls: type, values: dict[str, Any], where: str | Callable[[str], str]) -> dict[str, Any]:
    """``values`` checked against ``cls``'s fields (unknown keys named) and coerced to their
    types, without building ``cls`` — for options that only override a checkpoint's config."""
    name_of = _namer(where)
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        place = name_of(unknown[0]).rpartition(".")[0] if len(unknown) == 1 or not callable(where) else name_of("")[:-1]
        raise ConfigError(f"{place}: unknown option(s) {unknown}{suggestion(unknown[0], fields)}; known: "
                          f"{sorted(fields)}")
    return {key: coerce(value, fields[key], name_of(key)) for key, value in values.items()}


def suggestion(name: str, known: Iterable[str]) -> str:
    """A hint for a misspelt name: " (did you mean 'x'?)" with the closest known one, else nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _namer(where: str | Callable[[str], str]) -> Callable[[str], str]:
    return where if callable(where) else (lambda key: f"{where}.{key}")


_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def coerce(value: Any, declared: str, where: str) -> Any:
    """The one coercion every option goes through, typed by its dataclass annotation.

    YAML reads ``5e-5`` (no dot) as a string: it becomes the declared number. A boolean option
    takes yes/no/on/off/true/false as words. An integer option refuses ``1.5`` and a boolean;
    a list option takes one value as a one-element list, and each item is coerced to the list's
    item type (``[1, 2e-1]`` is two numbers). Anything else is left to the dataclass's own validation."""
    kinds = {part.strip() for part in declared.split("|")}
    if value is None:
        if "None" in kinds:
            return None
        raise ConfigError(f"{where}: a value is required ({declared})")
    if "bool" in kinds:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _WORDS:
            return _WORDS[value.lower()]
        if "str" in kinds and isinstance(value, str):  # e.g. "auto" for a bool | str option
            return value
        raise ConfigError(f"{where}: expected true or false (yes/no, on/off), got {value!r}")
    if "int" in kinds and not isinstance(value, bool):
        number = _number(value, int)
        if isinstance(number, int) or ("float" in kinds and isinstance(number, float)):
            return number
        if isinstance(number, float) and number.is_integer():
            return int(number)
        if "str" not in kinds:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if "float" in kinds and not isinstance(value, bool):
        number = _number(value, float)
        if isinstance(number, (int, float)):
            return float(number)
        if "str" not in kinds:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
    listed = next((kind for kind in kinds if kind.startswith("list[")), None)
    if listed:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        return [coerce(item, listed[5:-1], f"{where}[{index}]") for index, item in enumerate(items)]
    if "str" in kinds and not isinstance(value, str):  # a number declared beside text was returned above
        expected = " or ".join(name for kind, name in (("str", "text"), ("int", "an integer"), ("float", "a number"))
                               if kind in kinds)
        raise ConfigError(f"{where}: expected {expected}, got {value!r}" + (
            " (true and false are booleans; the option takes a word: nlu config show lists them)"
            if isinstance(value, bool) and kinds <= {"str", "None"} else ""))
    return value


def _number(value: Any, kind: type) -> Any:
    """``value`` as a number when it is one or a string that spells one; otherwise unchanged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        for parse in ((int, float) if kind is int else (float,)):
            try:
                return parse(value)
            except ValueError:
                continue
    return value
