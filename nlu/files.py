"""Atomic file writes: a crash mid-write leaves the previous file intact, never a torn one."""

from __future__ import annotations

import hashlib
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Same directory because ``os.replace`` is atomic only within one file system. Created with
    ``os.open(..., 0o666)`` rather than ``tempfile.mkstemp``, whose 0600 mode would make every
    report unreadable to other users; this way the umask applies as for a plain ``open``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    plain_mode = temporary.stat().st_mode & 0o777  # 0666 less the umask, read without changing the umask
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, plain_mode)  # a writer that replaced the file (safetensors does) made it 0600
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def sha256(path: str | os.PathLike) -> str:
    """The file's SHA-256 hex digest, read in 1 MiB blocks (checkpoint manifests, downloaded wheels)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
