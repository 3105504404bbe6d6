"""Options of the training loop, shared by pretraining and fine-tuning."""

from __future__ import annotations

from dataclasses import dataclass

from nlu.errors import ConfigError


@dataclass
class TrainingConfig:
    output_dir: str = "runs/default"
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: float = 1.0
    max_steps: int = 0
    """Optimizer steps; 0 means ``epochs`` passes over the training data."""
    batch_size: int = 32
    """Per process and per forward pass; the global batch is this × processes × accumulation."""
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"
    """auto (bf16 on a GPU that supports it, else fp32), no, bf16 or fp16."""
    seed: int = 42
    log_every: int = 10
    eval_every: int = 0
    """Optimizer steps between evaluations; 0 evaluates once per epoch and at the end."""
    save_every: int = 100
    keep_checkpoints: int = 2
    early_stopping_patience: int = 0
    """Evaluations without improvement before stopping; 0 never stops early."""
    select_metric: str = "loss"
    select_mode: str = "min"
    cpu: bool = False
    fused_optimizer: bool = True
    compile: bool = False
    """torch.compile the model (inductor) through Accelerate; falls back to eager with a warning
    where no compiler toolchain is available. Costs a one-off compilation (tens of seconds)."""

    def __post_init__(self) -> None:
        positive = ("learning_rate", "batch_size", "gradient_accumulation_steps", "log_every", "save_every",
                    "keep_checkpoints")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"training.{name} must be positive, got {getattr(self, name)!r}")
        if self.max_steps < 0 or self.epochs <= 0 and self.max_steps == 0:
            raise ConfigError("training needs max_steps > 0 or epochs > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"training.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ConfigError(f"training.mixed_precision must be auto, no, bf16 or fp16; got {self.mixed_precision!r}")
        if self.select_mode not in ("min", "max"):
            raise ConfigError(f"training.select_mode must be min or max, got {self.select_mode!r}")
