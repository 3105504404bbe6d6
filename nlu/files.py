"""Atomic file writes (a crash mid-write leaves the previous file intact, never a torn one), and
fingerprints that tell whether a file is still the one a run read."""

from __future__ import annotations

import filecmp
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


def fingerprint(path: str | os.PathLike) -> dict[str, dict[str, int | str]]:
    """Size, modification time and SHA-256 of the file PATH, or of every file under the folder PATH
    (by name relative to it, through linked folders; hidden ones, such as a run folder's lock, left out)."""
    return {name: {"size": file.stat().st_size, "mtime_ns": file.stat().st_mtime_ns, "sha256": sha256(file)}
            for name, file in listed_files(Path(path)).items()}


def listed_files(root: Path) -> dict[str, Path]:
    """ROOT itself (named "") when it is a file, else the files under it by relative name, following
    linked folders (a datasets folder linked into a data folder) once each."""
    if root.is_file():
        return {"": root}
    found, seen = {}, set()
    for folder, folders, files in os.walk(root, followlinks=True):
        if os.path.realpath(folder) in seen:  # a link back up the tree
            folders[:] = []
            continue
        seen.add(os.path.realpath(folder))
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            file = Path(folder) / name
            if not name.startswith(".") and file.is_file():
                found[file.relative_to(root).as_posix()] = file
    return found


def changed_files(recorded: dict[str, dict[str, int | str]], path: str | os.PathLike) -> list[str]:
    """The files of RECORDED (a :func:`fingerprint` of PATH) whose content differs now, that are gone,
    or that are new. A file whose size and modification time are unchanged is not read again; one
    read again and found the same gets its new time in RECORDED, so that it is not read a third time."""
    root = Path(path)
    now = listed_files(root)
    changed = set(now) ^ set(recorded)
    for name in set(now) & set(recorded):
        stat, before = now[name].stat(), recorded[name]
        if (stat.st_size, stat.st_mtime_ns) == (before["size"], before["mtime_ns"]):
            continue
        if stat.st_size != before["size"] or sha256(now[name]) != before["sha256"]:
            changed.add(name)
        else:
            before["mtime_ns"] = stat.st_mtime_ns
    return [str(root / name) if name else str(root) for name in sorted(changed)]


def link_identical_files(folder: Path, original: Path) -> int:
    """Each file of FOLDER with the same bytes as its namesake in ORIGINAL becomes a hard link to it
    (atomically: a link beside it, then a rename), so that two equal copies of a model (a run's
    best/ and final model/ when the best step is the last) take the disk once; the bytes saved.
    Where the file system has no hard links the copies stay."""
    saved = 0
    for name, file in listed_files(folder).items():
        twin = original / name
        if not twin.is_file() or os.path.samefile(file, twin) or not filecmp.cmp(file, twin, shallow=False):
            continue  # (filecmp stops at the first block that differs: two other models cost one read)
        temporary = file.with_name(f".{file.name}.{uuid.uuid4().hex}.link")
        try:
            os.link(twin, temporary)
        except OSError:
            return saved
        os.replace(temporary, file)
        saved += twin.stat().st_size
    return saved
