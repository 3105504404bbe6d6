"""Run folders: the one place that creates, validates, locks, reuses, resumes and forces a run.

Every way of running a task — ``nlu pretrain`` / ``nlu finetune``, the main job, ``nlu sweep``,
the study scripts — goes through ``run(settings)``, so they share these guarantees:

- Settings are validated completely (every section, through one coercion) before anything is
  written; ``settings.yaml`` holds the resolved settings, defaults included.
- One owner per run folder: an exclusive advisory lock (``flock`` on ``<folder>/.lock``) is held by
  the main process for the whole run. The kernel releases it on any exit, ``kill -9`` included,
  so a lock left by a dead process is simply taken over; a live owner is named in the error.
- An existing folder means "resume", which is only sound with the settings and inputs it started
  with (``inputs.json`` fingerprints its data files and init model); a finished run with the same
  settings and unchanged inputs is reused, not repeated; ``force`` starts over. A folder of
  other files is never a run folder: nlu neither writes into it nor empties it.
- A run that fails on bad input before its first checkpoint leaves no folder behind; one that a
  bug stops keeps what it logged but not its settings: either way the corrected command is not
  refused as "other settings".
"""

from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import yaml
from accelerate import PartialState

from nlu.config import EncoderConfig
from nlu.errors import ConfigError, NluError, RunFolderRefused
from nlu.files import changed_files, fingerprint, link_identical_files, write_text_atomic
from nlu.machine import describe_machine, peak_resident_mib
from nlu import reference
from nlu.options import coerce_options, fill
from nlu.reporting import command_line
from nlu.settings import RunSettings
from nlu.sources import check_model_name, model_directory
from nlu.tasks import classify, ner, pretrain
from nlu.training.config import TrainingConfig
from nlu.training.loop import distributed_state

SETTINGS_FILE = "settings.yaml"
INPUTS_FILE = "inputs.json"
INPUT_OPTIONS = ("train", "dev", "test", "local_dir", "train_files", "heldout_files", "tokenizer")
"""Data options that name files or folders a run reads (PAN-X reads local_dir, not train, dev and test)."""
PROCESS_FILE = "process.json"
LOCK_FILE = ".lock"
NOT_COMPUTING = {"training.progress", "training.progress_label", "training.keep_finished_checkpoints"}
"""Options that change what the terminal shows or the folder keeps, not what the run computes: a run
resumes whatever they are."""


@dataclass(frozen=True)
class TaskEntry:
    """What the runs layer needs to know of a task; the task itself is its module's ``run``."""

    name: str
    data_options: type
    run: Callable[[RunSettings], dict[str, Any]]
    summary_file: str
    """Written last by a finished run: its presence means the run can be reused."""
    headline: tuple[str, ...]
    """Summary figures printed at the end of a command."""
    load_data: Callable[[Any], Any] | None = None
    """The task's reader (its data options → train, dev and test records), for what works on a
    task's data outside a run: a sweep's subsets, vocabulary and baselines."""


TASKS: dict[str, TaskEntry] = {
    "pretrain": TaskEntry("pretrain", pretrain.PretrainData, pretrain.run, "pretraining.json",
                          ("steps", "tokens_per_second", "final_eval", "unigram_mlm_loss")),
    "ner": TaskEntry("ner", ner.NerData, ner.run, "summary.json", ("test_f1", "test_macro_f1", "dev_f1", "steps"),
                     ner.load_data),
    "classify": TaskEntry("classify", classify.ClassifyData, classify.run, "summary.json",
                          ("test_macro_f1", "test_balanced_accuracy", "test_accuracy", "dev_macro_f1", "steps"),
                          classify.load_data),
}


def task_entry(name: str) -> TaskEntry:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; tasks are {', '.join(TASKS)}")
    return TASKS[name]


@dataclass
class RunRecord:
    task: str
    output_dir: Path
    summary: dict[str, Any]
    reused: bool
    wall_seconds: float
    cpu_seconds: float
    """CPU time of this process (all its threads) for the run: with wall time, how busy the cores were."""
    machine: dict[str, Any]
    command: str
    process: dict[str, float] | None = None
    """Peak resident memory, wall and CPU seconds of the process that made the run, when it ran
    alone in one (:func:`run_in_own_process`); None otherwise, where a process-wide peak would
    count whatever ran before it."""


def resolve(settings: RunSettings) -> RunSettings:
    """Validate every section and fill in the defaults, touching nothing on disk.

    The data section becomes the task's complete data options; the model section is checked
    option by option (with ``init`` it only overrides the checkpoint's config, so it cannot be
    built on its own), and built in full when the model starts from scratch."""
    entry = task_entry(settings.task)
    if settings.task == "pretrain" and "auto" in (settings.training.learning_rate, settings.training.warmup_ratio):
        raise ConfigError(f"{settings.where('training')('learning_rate')}: auto is chosen for fine-tuning "
                          f"(nlu.recipes); give numbers for pretraining")
    data = dataclasses.asdict(fill(entry.data_options, settings.data, settings.where("data")))
    if entry.load_data is not None:  # fine-tuning
        check_selection(settings)
    reference.check_framework(settings, data)
    model = check_model_options(settings)
    check_init(settings, data)
    return dataclasses.replace(settings, data=data, model=model)


def check_init(settings: RunSettings, data: dict[str, Any]) -> None:
    """What starting from a model, or not, asks of the other settings."""
    if settings.init is not None:
        check_model_name(settings.init)
    if settings.training.freeze_embeddings and (settings.init is None or settings.from_scratch):
        raise ConfigError(f"{settings.where('training')('freeze_embeddings')}: keeps pretrained word embeddings fixed; "
                          "it needs init (a pretrained model) without from_scratch (or training.freeze_embeddings=false)")
    if isinstance(data.get("tokenizer"), int) and settings.init is not None:
        raise ConfigError(f"{settings.where('data')('tokenizer')}={data['tokenizer']} trains a vocabulary for a model from "
                          "scratch; init brings its own tokenizer (drop one of them)")


def check_selection(settings: RunSettings) -> None:
    """Fine-tuning keeps the model with the best dev task metric, and every one of them is higher-is-
    better; a selection by the lowest loss, asked for in so many words, is refused, not rewritten."""
    asked = {key: getattr(settings.training, key) for key in ("select_metric", "select_mode")
             if f"training.{key}" in settings.origins}
    for key, refused in (("select_metric", "loss"), ("select_mode", "min")):
        if asked.get(key) == refused:
            raise ConfigError(f"{settings.where('training')(key)}={refused}: fine-tuning selects by a dev task metric, "
                              "higher is better (f1, macro_f1, balanced_accuracy, ...; select_mode max)")


def check_model_options(settings: RunSettings) -> dict[str, Any]:
    where = settings.where("model")
    model = coerce_options(EncoderConfig, settings.model, where)
    if settings.init is None:
        fill(EncoderConfig, model, where)
    return model


def changed_settings(before: dict[str, Any], now: dict[str, Any], task: str) -> list[str]:
    """Options whose value differs from a folder's settings.yaml. An option a newer nlu added is
    absent from an older run's file: at its default it changes nothing, so the run still resumes."""
    defaults = {"training": dataclasses.asdict(TrainingConfig()),
                "data": dataclasses.asdict(task_entry(task).data_options()), "framework": "nlu"}
    changed = []
    for section, value in now.items():
        if isinstance(value, dict):
            old = before.get(section) or {}
            changed += [f"{section}.{key}" for key in sorted(set(value) | set(old))
                        if old.get(key, defaults.get(section, {}).get(key)) != value.get(key)
                        and f"{section}.{key}" not in NOT_COMPUTING]
        elif before.get(section, defaults.get(section)) != value:
            changed.append(section)
    return changed


@contextmanager
def run_folder_lock(output_dir: Path) -> Iterator[None]:
    """Hold ``<output_dir>/.lock`` exclusively; name the live owner if another process has it."""
    path = output_dir / LOCK_FILE
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip()
        handle.close()
        try:
            info = json.loads(owner)
            who = f"process {info['pid']} on {info['host']} since {info['started']} ({info['command']})"
        except (ValueError, KeyError):
            who = "another process"
        raise NluError(f"{output_dir} is in use by {who}; wait for it to finish or choose another "
                       f"training.output_dir") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command_line(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        yield
    finally:
        handle.close()


def clear_folder(output_dir: Path) -> None:
    """--force: delete the run's contents but not the lock this process holds inside it."""
    for entry in output_dir.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def make_folder(output_dir: Path) -> bool:
    """Create the run folder; True if it did not exist. An unwritable place, or a folder of other
    files (``training.output_dir=data`` by mistake, which ``--force`` would empty), is a one-line error."""
    existed = output_dir.is_dir()
    if existed and not any((output_dir / name).exists() for name in (LOCK_FILE, SETTINGS_FILE)) \
            and any(not entry.name.startswith(".") for entry in output_dir.iterdir()):  # .gitkeep, .DS_Store pass
        raise ConfigError(f"{output_dir} holds files but is not an nlu run folder (no {SETTINGS_FILE}); nlu writes "
                          f"and --force deletes only run folders: choose a new or empty training.output_dir")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / LOCK_FILE).touch()
    except OSError as error:
        raise ConfigError(f"{output_dir}: cannot write the run folder here ({error.strerror})") from None
    return not existed


def check_settings(settings: RunSettings, output_dir: Path) -> bool:
    """Refuse a folder started with other settings or on inputs that have changed since; write
    settings.yaml and inputs.json for a new run. True if new."""
    saved = output_dir / SETTINGS_FILE
    if saved.exists():
        before = yaml.safe_load(saved.read_text()) or {}
        changed = changed_settings(before, settings.to_dict(), settings.task)
        if changed:
            raise RunFolderRefused(f"{output_dir} holds a run with other settings ({', '.join(changed)}); "
                                   f"pass --force to start over or choose another training.output_dir")
        check_inputs(output_dir)
        return False
    settings.save(saved, made_by=command_line())
    write_text_atomic(output_dir / INPUTS_FILE, json.dumps({path: fingerprint(path) for path in input_paths(settings)},
                                                           indent=1))
    return True


def input_paths(settings: RunSettings) -> list[str]:
    """The files and folders here that the run reads: its data files (INPUT_OPTIONS) and the files of
    its init model (those of the model folder itself: of a run folder, its best/ or model/, not the
    reports and evaluations written beside them)."""
    panx = bool(settings.data.get("panx_lang"))
    named = [settings.data.get(key) for key in INPUT_OPTIONS if not (panx and key in ("train", "dev", "test"))]
    if settings.init is not None and Path(settings.init).is_dir():
        model = model_directory(settings.init)
        named.append(sorted(str(file) for file in model.iterdir() if file.is_file() and not file.name.startswith(".")))
    paths = [path for value in named for path in (value if isinstance(value, list) else [value])]
    return list(dict.fromkeys(path for path in paths if isinstance(path, str) and Path(path).exists()))


def check_inputs(output_dir: Path) -> None:
    """Refuse to reuse or resume a run whose data files or init model changed since it started (one
    still here: a run reused from elsewhere keeps what it made). A run from before nlu recorded its
    inputs has no inputs.json, and is not checked."""
    recorded = output_dir / INPUTS_FILE
    if not recorded.is_file():
        return
    text = recorded.read_text()
    inputs = json.loads(text)
    changed = [file for path, files in inputs.items() if Path(path).exists() for file in changed_files(files, path)]
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise RunFolderRefused(f"{output_dir} was run on other inputs: {', '.join(changed[:3])}{more} changed since it "
                               f"started; pass --force to run it again on them, or choose another training.output_dir")
    refreshed = json.dumps(inputs, indent=1)  # with the new times of files read again and found the same
    if refreshed != text:
        write_text_atomic(recorded, refreshed)


def run_settings_file(model: str) -> Path | None:
    """The settings.yaml of the run MODEL (an ``init``) is, or holds (``runs/x/model``); None for a
    model outside run folders. Its made-by line says how to make the model again."""
    folder = Path(model)
    return next((run_dir / SETTINGS_FILE for run_dir in (folder, folder.parent)
                 if folder.is_dir() and (run_dir / SETTINGS_FILE).is_file()), None)


def on_main_process(state: PartialState, work: Callable[[], Any]) -> Any:
    """Run ``work`` on the main process; every process returns its result or raises its error,
    so a refused run folder stops all workers instead of leaving them at a barrier."""
    outcome: list[Any] = [None, None]
    failure: NluError | None = None
    if state.is_main_process:
        try:
            outcome[0] = work()
        except NluError as error:
            failure, outcome[1] = error, str(error)
    if state.num_processes > 1:
        torch.distributed.broadcast_object_list(outcome, src=0)
    if failure is not None:
        raise failure
    if outcome[1] is not None:
        raise NluError(outcome[1])
    return outcome[0]


def run(settings: RunSettings, force: bool = False) -> RunRecord:
    """Validate, take the folder, and run ``settings`` — or reuse the finished run it holds."""
    settings = resolve(settings)
    entry = task_entry(settings.task)
    output_dir = Path(settings.training.output_dir)
    state = distributed_state(settings.training)
    started, cpu_started = time.perf_counter(), time.process_time()
    created = on_main_process(state, lambda: make_folder(output_dir))
    lock = run_folder_lock(output_dir) if state.is_main_process else _no_lock()
    try:
        with lock:
            summary_path = output_dir / entry.summary_file

            def prepare() -> bool:
                if force:
                    clear_folder(output_dir)
                fresh = check_settings(settings, output_dir)
                return not fresh and summary_path.exists()

            reused = on_main_process(state, prepare)
            if reused:
                summary = json.loads(summary_path.read_text())
            else:
                try:
                    summary = (reference.run if settings.framework == "transformers" else entry.run)(settings)
                except Exception as error:
                    if state.is_main_process and not started_training(output_dir):
                        # bad input: nothing of the run is kept; a bug: its log stays for debugging
                        forget_failed_start(output_dir, created and isinstance(error, NluError))
                    raise
                if state.is_main_process:
                    tidy_finished_run(output_dir, settings.training.keep_finished_checkpoints)
    finally:
        if created and state.is_main_process and output_dir.is_dir() and not any(
                entry.name != LOCK_FILE for entry in output_dir.iterdir()):
            shutil.rmtree(output_dir)
    return RunRecord(settings.task, output_dir, summary, reused, time.perf_counter() - started,
                     time.process_time() - cpu_started, describe_machine(), command_line())


def run_in_own_process(settings: RunSettings, force: bool = False) -> RunRecord:
    """:func:`run` in a fresh (spawned) process with this process's torch threads, so that its peak
    memory, imports and caches are the run's alone. The figures are kept in ``<run>/process.json``:
    a finished run that is reused reports those of the process that made it, and is read back here
    (a process of its own would spend seconds importing torch to read two files)."""
    settings = resolve(settings)
    output_dir = Path(settings.training.output_dir)
    if not force and all((output_dir / name).is_file() for name in (SETTINGS_FILE, task_entry(settings.task).summary_file)):
        return with_process_figures(run(settings))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_measured_run, settings, force, torch.get_num_threads()).result()


def _measured_run(settings: RunSettings, force: bool, threads: int) -> RunRecord:
    torch.set_num_threads(threads)
    record = run(settings, force)
    if not record.reused:
        figures = {"peak_rss_mib": peak_resident_mib(),
                   "wall_seconds": record.wall_seconds, "cpu_seconds": record.cpu_seconds, "threads": threads}
        write_text_atomic(record.output_dir / PROCESS_FILE, json.dumps(figures, indent=2))
    return with_process_figures(record)


def with_process_figures(record: RunRecord) -> RunRecord:
    path = record.output_dir / PROCESS_FILE
    return dataclasses.replace(record, process=json.loads(path.read_text()) if path.exists() else None)


def tidy_finished_run(output_dir: Path, keep_checkpoints: bool) -> None:
    """A finished run is reused, never resumed: its checkpoints go (unless asked to stay), and a
    final model equal to the best one (the best step was the last) becomes hard links to it."""
    if not keep_checkpoints:
        for checkpoint in checkpoint_folders(output_dir):
            shutil.rmtree(checkpoint)
        for folder in (output_dir / "checkpoints", output_dir / "transformers"):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    if (output_dir / "model").is_dir() and (output_dir / "best").is_dir():
        link_identical_files(output_dir / "model", output_dir / "best")


def checkpoint_folders(output_dir: Path) -> list[Path]:
    """nlu's checkpoints (``checkpoints/step-N``, and a partial ``.step-N``) or the Trainer's
    (``transformers/checkpoint-N``)."""
    return [*(output_dir / "checkpoints").glob("*step-*"), *(output_dir / "transformers").glob("checkpoint-*")]


def started_training(output_dir: Path) -> bool:
    return any(path.name.startswith(("step-", "checkpoint-")) for path in checkpoint_folders(output_dir))


def forget_failed_start(output_dir: Path, everything: bool) -> None:
    """The run failed before its first checkpoint (bad input found while reading data, or a bug): its
    settings go, so the corrected command starts afresh instead of meeting "other settings", and with
    ``everything`` (bad input in a folder this run made) all it wrote."""
    doomed = ([entry for entry in output_dir.iterdir() if entry.name != LOCK_FILE] if everything
              else [output_dir / SETTINGS_FILE, output_dir / INPUTS_FILE])
    for entry in doomed:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


PR_SET_PDEATHSIG = 1


def follow_launcher() -> None:
    """Under torchrun each worker runs in its own session, so ``kill -9`` of the launcher would
    leave the workers training and writing on their own. Ask the kernel to send SIGTERM when the
    launcher dies, and leave at once if it is already gone."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return
    launcher = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != launcher or launcher == 1:
        os._exit(1)
