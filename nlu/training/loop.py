"""The one training loop, for pretraining and every fine-tuning task.

A task object says how to batch, what the loss is and how to evaluate; this loop owns
everything else: Accelerate (devices, processes, precision, accumulation), the optimizer and
schedule, progress, the JSONL log, atomic checkpoints, resume, best-model keeping and early
stopping. It never asks which task it runs.

Resume is exact: the data order is a seeded permutation per epoch, masks and other
per-example randomness are seeded by (seed, epoch, index) in the task's collator, and
Accelerate restores model, optimizer and RNG states, so a killed run that resumes ends with
the weights an uninterrupted run would have had. Checkpoints are verified before they are
trusted (nlu.training.checkpoints): a damaged newest one is named, set aside, and the previous
one used.

A step never waits for the device: the task's figures stay tensors on it, summed there, and
are read once per ``log_every`` steps (and at checkpoints), not with an ``.item()`` per step.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import TorchDynamoPlugin, set_seed
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from nlu.errors import ConfigError
from nlu.files import write_text_atomic
from nlu.hardware import Precision, choose_device, choose_precision
from nlu.model.models import NluModel
from nlu.training.checkpoints import (FORMAT, STATE_NAME, clean_checkpoints, published_checkpoints, recover_directory,
                                      replace_directory, resume_checkpoint, save_state, seal, step_directory)
from nlu.training.config import TrainingConfig

LOG_NAME = "log.jsonl"


class Task(Protocol):
    sampling_weights: Sequence[float] | None
    """Optional per-example weights for oversampling; absent or None means a plain shuffle."""

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]: ...

    def set_epoch(self, epoch: int) -> None: ...

    def training_step(self, model: torch.nn.Module,
                      batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        """Loss to minimise and figures to log; ``tokens`` (real tokens in the batch) feeds
        throughput. Figures computed on the device stay 0-d tensors there (no ``.item()``, no
        ``int()``): the loop reads them every ``log_every`` steps."""

    def evaluate(self, model: NluModel) -> dict[str, float | str]:
        """Dev figures, and a ``warning`` when the model's predictions collapsed to one class: the
        loop says it with the step and keeps it in the history, which a resumed run restores."""

    def save_artifacts(self, directory: Path) -> None:
        """Write what a saved model needs beside its weights (tokenizer, label names)."""


class EpochSampler(Sampler[int]):
    """A fresh seeded permutation each epoch, independent of any global RNG.

    With ``weights`` (oversampling) an epoch is ``size`` draws with replacement, each example
    drawn with probability proportional to its weight.
    """

    def __init__(self, size: int, seed: int, weights: Sequence[float] | None = None):
        self.size, self.seed, self.epoch = size, seed, 0
        self.probabilities = None if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = np.random.default_rng([self.seed, self.epoch])
        if self.probabilities is None:
            return iter(generator.permutation(self.size).tolist())
        return iter(generator.choice(self.size, size=self.size, p=self.probabilities).tolist())

    def __len__(self) -> int:
        return self.size


@dataclass
class TrainerState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evaluations_without_improvement: int = 0
    train_seconds: float = 0.0
    tokens_seen: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    precision: dict[str, str] = field(default_factory=dict)
    """What this run computes in and why (name and reason of nlu.hardware.Precision)."""


@dataclass
class TrainingResult:
    state: TrainerState
    final_model: Path
    best_model: Path | None
    num_processes: int
    precision: Precision


def use_cpu(config: TrainingConfig) -> bool:
    """Accelerate only forms a multi-process CPU group (torchrun, gloo) when told it runs on
    the CPU, so a machine without a GPU always says so."""
    return config.cpu or not torch.cuda.is_available()


def distributed_state(config: TrainingConfig) -> PartialState:
    """The process group, created once with the same device choice the loop will use; data
    preparation calls this before training to let the main process go first."""
    return PartialState(cpu=use_cpu(config))


def compile_plugin(requested: bool) -> TorchDynamoPlugin | None:
    """Inductor with dynamic shapes (batches vary in length) when asked for and when this machine
    can build kernels — probed on a one-line function, so a missing compiler shows up here as a
    warning rather than as a crash inside the first training step."""
    if not requested:
        return None
    try:
        torch.compile(lambda x: x * 2, backend="inductor")(torch.ones(2))
    except Exception as error:  # noqa: BLE001 — any failure means: run eagerly
        warnings.warn(f"training.compile=true, but torch.compile does not work here "
                      f"({type(error).__name__}: {error}); training without it")
        return None
    return TorchDynamoPlugin(backend="inductor", dynamic=True)


def training_precision(config: TrainingConfig) -> Precision:
    """``training.mixed_precision`` resolved for the device this run trains on."""
    return choose_precision(config.mixed_precision, torch.device("cpu") if use_cpu(config) else choose_device())


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """BERT's recipe: no weight decay on biases and LayerNorm parameters."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def linear_warmup_decay(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


class Figures:
    """Per-step figures summed where they were computed and read in one go: reading a CUDA
    tensor waits for the GPU to finish, so the loop reads once per log line, not once per step.
    Numbers from the host (counts made before the batch moved) are summed on the host."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor | float] = {}
        self.counts: dict[str, int] = {}

    def add(self, figures: dict[str, torch.Tensor | float]) -> None:
        for key, value in figures.items():
            value = value.detach().to(torch.float64) if isinstance(value, torch.Tensor) else float(value)
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.counts[key] = self.counts.get(key, 0) + 1

    def read(self) -> dict[str, float]:
        """Sums so far, as host numbers (one device read), and start over."""
        on_device = [key for key, value in self.sums.items() if isinstance(value, torch.Tensor)]
        values = dict(zip(on_device, torch.stack([self.sums[key] for key in on_device]).tolist() if on_device else []))
        sums = {key: values.get(key, value) for key, value in self.sums.items()}
        self.sums, self.counts = {}, {}
        return sums

    def read_means(self) -> dict[str, float]:
        counts, sums = self.counts, self.read()
        return {key: sums[key] / counts[key] for key in sorted(sums)}


def train(
    task: Task,
    model: NluModel,
    train_examples: Sequence[dict],
    config: TrainingConfig,
) -> TrainingResult:
    if "auto" in (config.learning_rate, config.warmup_ratio):
        raise ConfigError("training.learning_rate=auto and warmup_ratio=auto are chosen for fine-tuning "
                          "(nlu.recipes); give numbers for pretraining")
    output_dir = Path(config.output_dir)
    checkpoints = output_dir / "checkpoints"
    precision = training_precision(config)
    # One Accelerator per run: its state is a process-wide singleton that refuses a second run
    # in another precision, so the previous run's settings are dropped (the process group stays).
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        cpu=use_cpu(config),
        mixed_precision=precision.name,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        rng_types=[],
        dynamo_plugin=compile_plugin(config.compile),
    )
    set_seed(config.seed, device_specific=True)
    main = accelerator.is_main_process
    if main:
        print(f"precision: {precision}")

    sampler = EpochSampler(len(train_examples), config.seed, getattr(task, "sampling_weights", None))
    # Its own generator: every new DataLoader iterator draws a seed, and drawing it from the
    # global RNG would shift dropout masks after a resume (a fresh iterator is made mid-epoch).
    loader = DataLoader(train_examples, batch_size=config.batch_size, sampler=sampler, collate_fn=task.collate,
                        generator=torch.Generator().manual_seed(config.seed))
    batches_per_epoch = math.ceil(len(train_examples) / config.batch_size / accelerator.num_processes)
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / config.gradient_accumulation_steps))
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    warmup_steps = int(config.warmup_ratio * total_steps)
    eval_interval = config.eval_interval(steps_per_epoch)
    min_steps = math.ceil(config.min_epochs * steps_per_epoch)

    optimizer = torch.optim.AdamW(
        parameter_groups(model, config.weight_decay), lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-6,
        fused=config.fused_optimizer or None,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(total_steps, warmup_steps))
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    state = TrainerState()
    recover_directory(output_dir / "best")
    if main:
        clean_checkpoints(checkpoints)
    accelerator.wait_for_everyone()
    resumed = resume_checkpoint(accelerator, checkpoints)
    if resumed is not None:
        resume_from, saved = resumed
        state = TrainerState(**saved["state"])
        schedule.load_state_dict(saved["schedule"])
        if main:
            print(f"resuming from {resume_from} (step {state.step} of {total_steps})")
            if state.precision and state.precision.get("name") != precision.name:
                print(f"note: the run so far computed in {state.precision.get('name')}, it continues in {precision.name}")
    state.precision = {"name": precision.name, "reason": precision.reason}
    log = JsonlLog(output_dir / LOG_NAME, enabled=main, resume_step=state.step)

    progress = tqdm(total=total_steps, initial=state.step, disable=not (main and config.progress),
                    desc=config.progress_label or output_dir.name, dynamic_ncols=True)
    window, unread_tokens = Figures(), Figures()
    started = time.perf_counter() - state.train_seconds

    def count_tokens() -> None:
        # Every process holds a batch of about the same size; count tokens without a collective.
        state.tokens_seen += round(unread_tokens.read().get("tokens", 0)) * accelerator.num_processes

    def evaluate_and_select() -> bool:
        """Evaluate, keep the best model, and say whether to stop early."""
        metrics = task.evaluate(accelerator.unwrap_model(model))
        if metrics.get("warning") and main:
            warnings.warn(f"dev evaluation at step {state.step}: {metrics['warning']} (the run's summary says whether "
                          "the model it keeps does too)", stacklevel=2)
        log.write({"step": state.step, "split": "eval", **metrics})
        state.history.append({"step": state.step, **metrics})
        value = metrics[config.select_metric]
        better = state.best_metric is None or (
            value < state.best_metric if config.select_mode == "min" else value > state.best_metric
        )
        if better:
            state.best_metric, state.best_step, state.evaluations_without_improvement = value, state.step, 0
            if main:
                save_model(accelerator.unwrap_model(model), task, output_dir / "best")
        elif not (config.select_mode == "max" and state.best_metric <= 0):  # still at the floor: not counted
            state.evaluations_without_improvement += 1
        progress.set_postfix_str(f"eval {config.select_metric}={value:.4f}")
        return (0 < config.early_stopping_patience <= state.evaluations_without_improvement
                and state.step >= min_steps)

    def save_checkpoint() -> None:
        state.train_seconds = time.perf_counter() - started
        count_tokens()
        partial = checkpoints / f".step-{state.step:08d}"
        save_state(accelerator, partial)
        accelerator.wait_for_everyone()
        if main:
            write_text_atomic(partial / STATE_NAME, json.dumps(
                {"format": FORMAT, "state": asdict(state), "schedule": schedule.state_dict()}))
            seal(partial)
            replace_directory(partial, step_directory(checkpoints, state.step))
            for old in published_checkpoints(checkpoints)[: -config.keep_checkpoints]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()

    model.train()
    stop = state.step >= total_steps or state.stopped_early
    while not stop:
        # Through the prepared loader: Accelerate pushes its own pass counter into the sampler at
        # every pass, and a resumed process's counter would otherwise restart at epoch 0.
        loader.set_epoch(state.epoch)
        task.set_epoch(state.epoch)
        epoch_loader = accelerator.skip_first_batches(loader, state.batch_in_epoch) if state.batch_in_epoch else loader
        for batch in epoch_loader:
            with accelerator.accumulate(model):
                loss, figures = task.training_step(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            state.batch_in_epoch += 1
            window.add({"loss": loss, **figures})
            unread_tokens.add({"tokens": figures.get("tokens", 0)})
            if not accelerator.sync_gradients:
                continue
            schedule.step()
            state.step += 1
            progress.update(1)
            if state.step % config.log_every == 0 or state.step == total_steps:
                summary = window.read_means()
                summary["lr"] = schedule.get_last_lr()[0]
                count_tokens()
                summary["tokens_per_second"] = state.tokens_seen / max(1e-9, time.perf_counter() - started)
                log.write({"step": state.step, "split": "train", **summary})
                progress.set_postfix({k: f"{v:.3g}" for k, v in summary.items() if k != "tokens"})
            # One decision per step — evaluate, stop, save — so a step that is both an epoch's
            # last and a checkpoint step is saved once.
            if state.step % eval_interval == 0 or state.step == total_steps:
                stop = evaluate_and_select()
            state.stopped_early = stop and state.step < total_steps
            stop = stop or state.step == total_steps
            if state.step % config.save_every == 0 or stop:
                save_checkpoint()
            if stop:
                break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
    progress.close()
    state.train_seconds = time.perf_counter() - started
    final = output_dir / "model"
    if main:
        save_model(accelerator.unwrap_model(model), task, final)
        write_text_atomic(output_dir / STATE_NAME, json.dumps(asdict(state), indent=2))
    accelerator.wait_for_everyone()
    best = output_dir / "best"
    return TrainingResult(state, final, best if best.exists() else None, accelerator.num_processes, precision)


def save_model(model: NluModel, task: Task, directory: Path) -> None:
    partial = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    task.save_artifacts(partial)
    replace_directory(partial, directory)


class JsonlLog:
    """Metrics, one JSON object per line, mirrored to TensorBoard when it is installed. On
    resume, lines past the checkpoint are dropped so the log reads as if the run had never been
    interrupted."""

    def __init__(self, path: Path, enabled: bool, resume_step: int):
        self.path, self.enabled, self.tensorboard = path, enabled, None
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if path.exists():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= resume_step]
        write_text_atomic(path, "".join(line + "\n" for line in kept))
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(path.parent / "tensorboard"), purge_step=resume_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                if key not in ("step", "split") and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(f"{record['split']}/{key}", value, record["step"])
            self.tensorboard.flush()
