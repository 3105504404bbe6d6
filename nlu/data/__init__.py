"""Readers that turn NER and classification data into plain Python records.

The helpers here are shared by both readers so that every input file is decoded, split into
lines and named in error messages the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

from nlu.errors import DataError

def read_text(path: str | PathLike) -> str:
    """Decode the whole file at once so a bad byte is reported with its exact line number.

    A streaming decoder only knows which chunk failed; counting newlines before the bad byte
    gives the physical line. ``utf-8-sig`` drops the byte-order mark spreadsheet exports add.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"not valid UTF-8 (byte {data[exc.start]:#04x})", path, line) from None


def physical_lines(text: str) -> list[str]:
    """Split on newlines only: ``str.splitlines`` also breaks on characters such as U+2028 or
    U+001C that occur inside tweet tokens, which would shift every later line number."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_json_lines(path: str | PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; anything but a JSON object is an error."""
    for number, line in enumerate(physical_lines(read_text(path)), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, number) from None
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object, got {type(record).__name__}", path, number)
        yield number, record


def dataset_source(ds: Any) -> str:
    """Name a ``datasets.Dataset`` the way a file path names a file, for error messages.

    Rows of a dataset have no line numbers; records read from one use the row index (as in
    ``ds[i]``) in place of a line.
    """
    name = ds.info.dataset_name or "dataset"
    if ds.info.config_name:
        name += f"/{ds.info.config_name}"
    if ds.split:
        name += f"[{ds.split}]"
    return f"hf:{name}"


def require_column(ds: Any, column: str) -> Any:
    """Return the feature of ``column``, or fail naming the columns the dataset does have."""
    if column not in ds.features:
        raise DataError(f"no column {column!r}; the dataset has {', '.join(ds.features)}", dataset_source(ds))
    return ds.features[column]
