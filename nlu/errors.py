"""Errors that point the user at the exact place in their input that is wrong."""

from __future__ import annotations

from os import PathLike


class NluError(Exception):
    """Base class so callers (the CLI) can print a clean message instead of a traceback."""


class ConfigError(NluError, ValueError):
    """A configuration value is invalid or inconsistent with another one."""


class RunFolderRefused(ConfigError):
    """A run folder holds a run this command may not reuse or resume: other settings, or inputs
    that changed since it started (``--force`` starts over)."""


class CheckpointError(NluError, ValueError):
    """A checkpoint directory is missing files, is corrupt, or does not match the model."""


class DataError(NluError, ValueError):
    """Bad input data. The message always names the file and, where there is one, the line."""

    def __init__(self, problem: str, path: str | PathLike | None = None, line: int | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(where + problem)
