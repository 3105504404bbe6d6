"""Readers that turn NER and classification data into plain Python records.

The helpers here are shared by both readers so that every input is named in error messages the
same way; text files are decoded and split into lines by :mod:`nlu.data.text`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from os import PathLike
from typing import Any

from nlu.data.text import read_text_lines
from nlu.errors import DataError


def read_json_lines(path: str | PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; anything but a JSON object is an error."""
    for number, line in read_text_lines(path):
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
