"""Text files into numbered lines, the same way for every reader.

Every reader (CoNLL, CSV/TSV, JSONL, corpora, ``nlu predict --file``) decodes and splits its
input here, so a file is either read completely — every physical line accounted for, with the
number an editor shows — or refused with ``path:line: problem``:

- a line ends at ``\\r\\n``, ``\\n`` or a lone ``\\r`` (CR-only exports would otherwise read as
  one line); nothing else ends a line, because tweets carry U+2028, U+0085 or U+001C inside
  tokens and ``str.splitlines`` would cut them apart and shift every later line number;
- a byte-order mark at the start of the file is dropped (spreadsheet exports add one); one
  anywhere else (files concatenated with their marks) is refused rather than glued to a word;
- NUL bytes (a binary or UTF-16 file) and invalid UTF-8 are refused with their location.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from os import PathLike
from pathlib import Path

from nlu.errors import DataError

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")
BOM = "\ufeff"
_REFUSED = {
    "\x00": "a NUL byte (\\x00): this looks like a binary or UTF-16 file; save it as UTF-8 text",
    BOM: "a byte-order mark (U+FEFF) after the start of the file (files joined with their marks?); remove it",
}


class LineIndex:
    """Character offsets to 1-based line and column numbers, under the line-break rules above."""

    def __init__(self, text: str | bytes):
        pattern = _LINE_BREAK_BYTES if isinstance(text, bytes) else LINE_BREAK
        self._starts = [0, *(match.end() for match in pattern.finditer(text))]

    def line(self, offset: int) -> int:
        return bisect_right(self._starts, offset)

    def column(self, offset: int) -> int:
        return offset - self._starts[self.line(offset) - 1] + 1


def read_text(path: str | PathLike) -> str:
    """The whole file as text, checked as described above; line breaks are left as they are
    (CSV keeps ``\\r\\n`` inside quoted fields)."""
    path = Path(path)
    if path.is_dir():
        raise DataError("is a directory, not a file", path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        index = LineIndex(data)
        raise DataError(
            f"not valid UTF-8 (byte {data[exc.start]:#04x}) at byte {index.column(exc.start)} of the line; "
            f"save the file as UTF-8",
            path,
            index.line(exc.start),
        ) from None
    text = text.removeprefix(BOM)
    for character, problem in _REFUSED.items():
        offset = text.find(character)
        if offset >= 0:
            index = LineIndex(text)
            raise DataError(f"column {index.column(offset)}: {problem}", path, index.line(offset))
    return text


def split_lines(text: str) -> list[str]:
    """Lines without their breaks; a final line break does not start another (empty) line."""
    lines = LINE_BREAK.split(text)
    if lines[-1] == "":
        lines.pop()
    return lines


def read_text_lines(path: str | PathLike) -> list[tuple[int, str]]:
    """``(line number, text)`` for every physical line of the file, blank lines included."""
    return list(enumerate(split_lines(read_text(path)), start=1))
