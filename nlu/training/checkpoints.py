"""Training checkpoints that are complete and intact, or refused with the reason.

A checkpoint is written into ``.step-NNNNNNNN`` (Accelerate's model, optimizer and RNG files,
then ``trainer_state.json``), every file is fsynced, and a manifest of their names, sizes and
SHA-256 digests is written last, atomically; only then is the directory renamed to
``step-NNNNNNNN`` and the rename fsynced. So a ``step-*`` directory with a manifest was complete
on disk when it was published, and a file that changed since (a torn write the disk lied about,
a truncation, a hand edit) no longer matches it.

Resume walks the checkpoints newest first and takes the first that verifies and loads; each one
passed over is named with the reason, and set aside as ``step-NNNNNNNN.rejected`` so that it is
neither tried again nor counted by ``keep_checkpoints``. Random states are checked too: Accelerate
skips an unreadable RNG file with an info log, which makes a resumed run silently diverge;
here that file is read first and the restored states compared with it, and a mismatch is a
:class:`~nlu.errors.CheckpointError`. Files holding pickled code are refused by Accelerate's
weights-only loader and never run.

Checkpoints written before manifests existed (``trainer_state.json`` without ``format``) are
accepted with a warning: they cannot be verified, only loaded, and a failed load still falls
back to the previous one.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from accelerate.utils import load as load_weights_only
from accelerate.utils.constants import RNG_STATE_NAME

from nlu.errors import CheckpointError
from nlu.files import sha256, write_text_atomic

STATE_NAME = "trainer_state.json"
MANIFEST_NAME = "manifest.json"
FORMAT = 2
"""``format`` in trainer_state.json of checkpoints that carry a manifest (1: before manifests)."""
STEP_NAME = re.compile(r"step-(\d{8})")
NEARLY_FULL_BYTES = 1 << 20
"""Free space below which a failed checkpoint write is taken for a full disk."""
REJECTED_SUFFIX = ".rejected"
RANDOM_STATES = ("random_state", "numpy_random_seed", "torch_manual_seed")
"""What Accelerate saves per process: Python's, NumPy's and torch's CPU generator."""


def step_directory(checkpoints: Path, step: int) -> Path:
    return checkpoints / f"step-{step:08d}"


def published_checkpoints(checkpoints: Path) -> list[Path]:
    """``step-NNNNNNNN`` directories, oldest first; partial, backup and rejected ones excluded."""
    if not checkpoints.is_dir():
        return []
    return sorted(path for path in checkpoints.iterdir() if path.is_dir() and STEP_NAME.fullmatch(path.name))


def fsync(path: Path) -> None:
    """Flush a file's data, or a directory's entries (renames into it), to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def save_state(accelerator: Accelerator, directory: Path) -> None:
    """``accelerator.save_state``, with a full disk named as one: torch's zip writer reports it as a
    RuntimeError ("unexpected pos ...", "file write failed") that no caller could tell from a bug,
    so the command line would show a traceback instead of its one line."""
    try:
        accelerator.save_state(str(directory))
    except RuntimeError as error:
        if shutil.disk_usage(directory.parent).free >= NEARLY_FULL_BYTES:
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory)) from error


def seal(directory: Path) -> None:
    """fsync every file of a written checkpoint, then write its manifest, last and atomically."""
    files = sorted(path for path in directory.iterdir() if path.is_file() and path.name != MANIFEST_NAME)
    for path in files:
        fsync(path)
    manifest = {path.name: {"size": path.stat().st_size, "sha256": sha256(path)} for path in files}
    write_text_atomic(directory / MANIFEST_NAME, json.dumps({"format": FORMAT, "files": manifest}, indent=1))
    fsync(directory)


def replace_directory(source: Path, target: Path) -> None:
    """Swap a finished directory into place; a crash leaves either the old or the new one, and
    the renames are on disk when this returns."""
    backup = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(target, backup)
    os.replace(source, target)
    fsync(target.parent)
    shutil.rmtree(backup, ignore_errors=True)


def recover_directory(target: Path) -> None:
    """Undo a swap interrupted between its two renames."""
    backup = target.with_name(target.name + ".old")
    if backup.exists() and not target.exists():
        os.replace(backup, target)


def clean_checkpoints(checkpoints: Path) -> None:
    """Before a run (main process): drop unpublished ``.step-*`` partials and finish swaps a
    crash interrupted."""
    if not checkpoints.is_dir():
        return
    for partial in checkpoints.glob(".step-*"):
        shutil.rmtree(partial, ignore_errors=True)
    for backup in checkpoints.glob("step-*.old"):
        target = backup.with_name(backup.name.removesuffix(".old"))
        recover_directory(target)
        shutil.rmtree(backup, ignore_errors=True)


def is_legacy(directory: Path) -> bool:
    """Written before checkpoints carried a manifest: a trainer_state.json without ``format``."""
    if (directory / MANIFEST_NAME).exists():
        return False
    try:
        saved = json.loads((directory / STATE_NAME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and "format" not in saved


def problem_with(directory: Path) -> str | None:
    """Why ``directory`` cannot be trusted, or None. A legacy checkpoint (no manifest) has no
    problem this can see: it can only be loaded."""
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        return None if is_legacy(directory) else f"no {MANIFEST_NAME}: the save did not finish"
    try:
        files = json.loads(manifest_path.read_text())["files"]
        expected = {name: (int(entry["size"]), str(entry["sha256"])) for name, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"{MANIFEST_NAME} unreadable ({one_line(error)})"
    for name, (size, digest) in sorted(expected.items()):
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size:,} bytes, the manifest says {size:,}"
        if sha256(path) != digest:
            return f"{name} does not match its SHA-256 in the manifest (changed or damaged after the save)"
    return None


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def random_states_restored(states: dict[str, Any]) -> bool:
    """Whether the process's generators now hold the states a checkpoint saved."""
    numpy_now, numpy_saved = np.random.get_state(), states["numpy_random_seed"]
    same = (random.getstate() == states["random_state"]
            and torch.equal(torch.get_rng_state(), states["torch_manual_seed"])
            and numpy_now[0] == numpy_saved[0] and np.array_equal(numpy_now[1], numpy_saved[1])
            and tuple(numpy_now[2:]) == tuple(numpy_saved[2:]))
    if torch.cuda.is_available() and "torch_cuda_manual_seed" in states:
        same = same and all(torch.equal(now, saved) for now, saved in
                            zip(torch.cuda.get_rng_state_all(), states["torch_cuda_manual_seed"]))
    return same


def load_checkpoint(accelerator: Accelerator, directory: Path) -> dict[str, Any]:
    """Restore model, optimizer and RNG states from ``directory`` and return its trainer state;
    CheckpointError when the random states cannot be restored."""
    random_path = directory / f"{RNG_STATE_NAME}_{accelerator.process_index}.pkl"
    try:
        states = load_weights_only(random_path)
    except Exception as error:  # noqa: BLE001 — whatever the loader raises, the states are lost
        raise CheckpointError(f"{random_path.name}: random states cannot be restored ({one_line(error)})") from None
    if not isinstance(states, dict) or not set(RANDOM_STATES) <= set(states):
        raise CheckpointError(f"{random_path.name}: random states cannot be restored (expected {', '.join(RANDOM_STATES)})")
    accelerator.load_state(str(directory))
    if not random_states_restored(states):
        raise CheckpointError(f"{random_path.name}: random states were not restored")
    saved = json.loads((directory / STATE_NAME).read_text())
    if not isinstance(saved, dict) or not {"state", "schedule"} <= set(saved):
        raise CheckpointError(f"{STATE_NAME}: expected the keys state and schedule")
    return saved


def resume_checkpoint(accelerator: Accelerator, checkpoints: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that verifies and loads, restored, and its trainer state; None when
    there is none at all. Every process takes the same one (they agree after each attempt), so a
    file one process cannot read moves all of them to the previous checkpoint."""
    candidates = published_checkpoints(checkpoints)
    skipped: list[str] = []
    for directory in reversed(candidates):
        problem = problem_with(directory)
        saved = None
        if problem is None:
            try:
                saved = load_checkpoint(accelerator, directory)
            except Exception as error:  # noqa: BLE001 — any failure to load disqualifies this checkpoint
                problem = str(error) if isinstance(error, CheckpointError) else f"cannot be loaded ({one_line(error)})"
        if problem is None and is_legacy(directory) and accelerator.is_main_process:
            warnings.warn(f"{directory} has no {MANIFEST_NAME} (written by an older nlu): its files could not be "
                          "verified, only loaded", stacklevel=2)
        problems = gather_object([problem]) if accelerator.num_processes > 1 else [problem]
        if problem is None and any(problems):
            index = next(index for index, other in enumerate(problems) if other)
            problem = f"process {index}: {problems[index]}"
        if not any(problems):
            set_aside(accelerator, candidates[candidates.index(directory) + 1:])
            return directory, saved
        skipped.append(f"{directory.name}: {problem}")
        if accelerator.is_main_process:
            warnings.warn(f"skipping checkpoint {directory}: {problem}", stacklevel=2)
    if candidates:
        raise CheckpointError(f"{checkpoints}: no checkpoint can be resumed from ({'; '.join(skipped)}); "
                              "remove the folder or pass --force to start over")
    return None


def set_aside(accelerator: Accelerator, rejected: list[Path]) -> None:
    """Rename checkpoints newer than the one resumed from out of the ``step-*`` namespace (kept for
    inspection): the run will write those steps again."""
    if accelerator.is_main_process:
        for directory in rejected:
            target = directory.with_name(directory.name + REJECTED_SUFFIX)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(directory, target)
            print(f"set aside {directory} as {target.name}")
    accelerator.wait_for_everyone()
