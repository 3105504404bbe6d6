"""Options of the training loop, shared by pretraining and fine-tuning."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlu.errors import ConfigError
from nlu.hardware import PRECISIONS

EVAL_EVERY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(epochs?|steps?)\s*")


@dataclass
class TrainingConfig:
    output_dir: str = "runs/default"
    """The run folder: settings.yaml, log.jsonl, checkpoints, best/ and model/, the report."""
    learning_rate: float | str = 5e-4
    """Peak AdamW learning rate, reached after warmup and then decayed linearly to 0; ``auto``
    (fine-tuning) chooses it from the starting point and the amount of data, and raises ``epochs``
    to at least 300 optimizer steps (nlu.recipes; printed at the start and kept in the summary)."""
    weight_decay: float = 0.01
    """AdamW weight decay; biases and LayerNorm parameters get none (BERT's recipe)."""
    warmup_ratio: float | str = 0.1
    """Share of the optimizer steps over which the learning rate rises from 0; ``auto`` as above."""
    epochs: float = 1.0
    """Passes over the training data (used when max_steps is 0)."""
    max_steps: int = 0
    """Optimizer steps; 0 means ``epochs`` passes over the training data."""
    batch_size: int = 32
    """Per process and per forward pass; the global batch is this × processes × accumulation."""
    gradient_accumulation_steps: int = 1
    """Forward and backward passes per optimizer step."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm before each step; 0 does not clip."""
    mixed_precision: str = "auto"
    """auto, no (fp32; also written off, false or fp32), bf16 or fp16. auto asks the hardware
    (nlu.hardware.choose_precision): bf16 on CPUs with native bf16 (AVX512-BF16, AMX) and on GPUs
    with bf16 units, fp16 with loss scaling on older GPUs, fp32 otherwise. What was chosen and why
    is printed and kept in trainer_state.json."""
    seed: int = 42
    """Seed of the weights, the data order, masking and dropout."""
    log_every: int = 10
    """Optimizer steps per train line in log.jsonl: the per-step figures stay on the device
    in between and are read (one host sync) only then."""
    eval_every: int | str = 0
    """When to evaluate: optimizer steps (``200``, ``"200 steps"``) or a share of an epoch
    (``"0.5 epoch"``, ``"2 epochs"``, rounded to whole steps, at least one); 0 is once per epoch.
    Always also after the last step."""
    save_every: int = 100
    """Optimizer steps between checkpoints; a run started again resumes from the newest."""
    keep_checkpoints: int = 2
    """How many checkpoints are kept while the run trains; older ones are deleted."""
    keep_finished_checkpoints: bool = False
    """Keep them once the run has finished too. They serve to resume a run that stopped, and a
    finished run is reused, not resumed: by default they go (with a large init, a gigabyte or more)."""
    early_stopping_patience: int = 0
    """Evaluations without improvement before stopping; 0 never stops early. While a max-mode
    metric has never risen above 0 (a tagger that predicts only O), evaluations are not counted."""
    min_epochs: float = 1.0
    """Early stopping never stops a run before this many epochs."""
    select_metric: str = "loss"
    """The dev figure that chooses best/: loss, or for fine-tuning a task metric (default f1 / macro_f1)."""
    select_mode: str = "min"
    """min or max: which way select_metric improves (fine-tuning sets it from the metric)."""
    cpu: bool = False
    """Train on the CPU even when a GPU is available."""
    fused_optimizer: bool = True
    """Use torch's fused AdamW kernel where the device has one."""
    freeze_embeddings: bool = False
    """Fine-tuning keeps the pretrained word-embedding matrix fixed (no gradient, no AdamW state).
    With a large vocabulary (250k rows: 96M of multilingual-e5-small's 118M parameters) that matrix
    dominates a CPU step's gradient and optimizer work: fixed, steps are faster and the run lighter at
    the same in-language F1, though zero-shot F1 on other languages can drop (reports/crosslingual/sweep.md)."""
    compile: bool = False
    """torch.compile the model (inductor) through Accelerate; falls back to eager with a warning
    where no compiler toolchain is available. Costs a one-off compilation (tens of seconds)."""
    progress: bool = True
    """Show a progress bar (main process only)."""
    progress_label: str = ""
    """The progress bar's label, e.g. the stage of a pipeline; empty: the output folder's name."""

    def __post_init__(self) -> None:
        for name in ("learning_rate", "warmup_ratio"):
            if isinstance(getattr(self, name), str) and getattr(self, name) != "auto":
                raise ConfigError(f"training.{name} must be a number or auto, got {getattr(self, name)!r}")
        positive = ("batch_size", "gradient_accumulation_steps", "log_every", "save_every", "keep_checkpoints",
                    *(("learning_rate",) if self.learning_rate != "auto" else ()))
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"training.{name} must be positive, got {getattr(self, name)!r}")
        if self.max_steps < 0 or self.epochs <= 0 and self.max_steps == 0:
            raise ConfigError("training needs max_steps > 0 or epochs > 0")
        if self.warmup_ratio != "auto" and not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"training.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        # YAML 1.1 reads a bare no as false; off, false and fp32 are other words for it.
        if self.mixed_precision is False or self.mixed_precision in ("off", "false", "fp32"):
            self.mixed_precision = "no"
        if self.mixed_precision not in PRECISIONS:
            raise ConfigError(f"training.mixed_precision must be {', '.join(PRECISIONS)}; got {self.mixed_precision!r}")
        self.eval_interval(1)  # validates eval_every
        if self.min_epochs < 0:
            raise ConfigError(f"training.min_epochs must be >= 0, got {self.min_epochs!r}")
        if self.select_mode not in ("min", "max"):
            raise ConfigError(f"training.select_mode must be min or max, got {self.select_mode!r}")

    def eval_interval(self, steps_per_epoch: int) -> int:
        """Optimizer steps between evaluations for an epoch of ``steps_per_epoch`` steps."""
        value = self.eval_every
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value or steps_per_epoch
        match = EVAL_EVERY.fullmatch(value) if isinstance(value, str) else None
        if match is None or float(match[1]) <= 0 or match[2].startswith("step") and not float(match[1]).is_integer():
            raise ConfigError(f"training.eval_every must be a number of steps (0: once per epoch) or a share of an "
                              f"epoch like \"0.5 epoch\"; got {value!r}")
        if match[2].startswith("step"):
            return int(float(match[1]))
        return max(1, round(float(match[1]) * steps_per_epoch))
