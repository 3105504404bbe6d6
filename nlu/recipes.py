"""Learning rate and warm-up chosen from where fine-tuning starts and how much data it has.

One rate per task file suits one model and one data size: 1e-3 is right for the small encoder
trained from scratch, 5e-5 for BERT-base on tens of thousands of sentences, and 5e-5 on a few
hundred sentences learns nothing in the few hundred steps it gets (issue #22: a 12-layer,
hidden-384 multilingual checkpoint on 400 NER sentences, 10 epochs: F1 0.02 at 5e-5, 0.54 at
3e-4). :func:`choose_learning_rate` is the rule, fitted to the learning-rate grids of
``nlu sweep tasks/sweeps/small_classify.yaml`` (reports/small_classify; 800 drawn Rotten Tomatoes
texts, 3 epochs of batch 32 = 75 steps, test macro-F1, majority class 0.23, one seed):

- **from scratch**: 1e-3, warm-up 10%. 4 x 256 encoder: 1e-4 0.23, 3e-4 0.23, 1e-3 0.53,
  3e-3 0.23 — a narrow optimum. Wider encoders get ``1e-3 x sqrt(256 / hidden)`` (the usual
  width scaling; not measured here).
- **pretrained**: ``5e-5 x 768 / hidden`` for a long run (BERT-base's 5e-5; 3e-4 for hidden
  128), raised by ``sqrt(2000 / steps)`` (at most 6x) when the run has fewer than 2,000
  optimizer steps: a short run must move the weights as far in fewer steps. The main job's
  pretrained 2 x 128 encoder, 75 steps: 3e-4 0.53, 1e-3 0.55, 3e-3 0.54 (rule: 1.5e-3); 12 x 384,
  130 steps (the issue): rule 3.9e-4; the shipped Rotten Tomatoes recipe (2 x 128, ~700 steps)
  has 5e-4 (rule: 5.1e-4). Warm-up 10%, 6% for runs of 2,000 steps or more.

The rate does not rescue a run that is too short. The task file as shipped with ``auto`` (7.7e-4,
and 12 epochs = 300 steps, below) reached 0.71 on the same 800 texts, TF-IDF with balanced class
weights 0.70. NER on 300 WNUT sentences (``tasks/sweeps/small_ner.yaml``): the task file's 10 epochs
(100 steps) predicted only O at every rate, from scratch and pretrained alike; at 1e-3, 300 steps
reached test F1 0.03 and 600 steps 0.10, against 0.09 for a most-frequent-tag gazetteer, and
``auto`` (300 steps) 0.03 (one seed each). So an auto rate also sets, when the run is given in
epochs, enough epochs for :data:`MIN_STEPS` = 300 optimizer steps — a floor, not enough for NER at
this size (:func:`choose_epochs`) — and early stopping waits for them. Pure functions: nothing
here trains or reads files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nlu.errors import ConfigError

SCRATCH_LR = 1e-3
SCRATCH_REFERENCE_HIDDEN = 256
PRETRAINED_BASE_LR = 5e-5
PRETRAINED_REFERENCE_HIDDEN = 768
FEW_STEPS = 2000
MIN_STEPS = 300
MAX_SHORT_RUN_BOOST = 6.0


@dataclass(frozen=True)
class Start:
    """Where fine-tuning starts: random weights, or a pretrained checkpoint of this shape."""

    pretrained: bool
    num_layers: int
    hidden_size: int

    def __post_init__(self) -> None:
        if self.num_layers < 1 or self.hidden_size < 1:
            raise ConfigError(f"a model needs at least one layer and a positive hidden size; got "
                              f"{self.num_layers} layers, hidden {self.hidden_size}")

    @classmethod
    def of(cls, config, pretrained: bool) -> "Start":
        """The start of a model with this EncoderConfig (``pretrained``: its weights come from a checkpoint)."""
        return cls(pretrained, config.num_layers, config.hidden_size)

    def describe(self) -> str:
        kind = "pretrained" if self.pretrained else "from scratch"
        return f"{kind}, {self.num_layers} layers × hidden {self.hidden_size}"


def optimizer_steps(train_examples: int, batch_size: int, epochs: float, max_steps: int = 0) -> int:
    """The optimizer steps a run will take (the loop's count: max_steps, else epochs over the batches)."""
    if train_examples < 1 or batch_size < 1:
        raise ConfigError(f"need at least one training example and a positive batch size; got "
                          f"{train_examples} examples, batch {batch_size}")
    return max_steps if max_steps > 0 else max(1, math.ceil(epochs * math.ceil(train_examples / batch_size)))


def choose_epochs(train_examples: int, batch_size: int, epochs: float) -> tuple[float, str | None]:
    """``epochs``, raised so that the run takes at least :data:`MIN_STEPS` optimizer steps, and the
    reason when it was raised (None when not): on a few hundred examples a task file's epochs
    give too few steps for any learning rate (the module docstring)."""
    batches = optimizer_steps(train_examples, batch_size, 1)
    steps = optimizer_steps(train_examples, batch_size, epochs)
    if steps >= MIN_STEPS:
        return epochs, None
    raised = float(math.ceil(MIN_STEPS / batches))
    return raised, (f"{epochs:g} epochs of {batches} batches are {steps} steps, under the {MIN_STEPS} a small "
                    f"data set needs: {raised:g} epochs")


def choose_learning_rate(start: Start, train_examples: int, batch_size: int = 32, epochs: float = 3.0,
                         max_steps: int = 0) -> tuple[float, float, str]:
    """(learning rate, warm-up ratio, reason) for fine-tuning from ``start`` on ``train_examples``
    examples (sentences or texts; windows for long NER sentences count as they are batched).

    The rule and the measurements behind it are in the module docstring."""
    steps = optimizer_steps(train_examples, batch_size, epochs, max_steps)
    if not start.pretrained:
        scale = math.sqrt(SCRATCH_REFERENCE_HIDDEN / max(start.hidden_size, SCRATCH_REFERENCE_HIDDEN))
        rate = SCRATCH_LR * scale
        width = f" × sqrt(256/{start.hidden_size}) = {_rounded(rate):.2g}" if scale < 1 else ""
        return _rounded(rate), 0.1, f"{start.describe()}: {SCRATCH_LR:g}{width} ({steps} steps)"
    base = PRETRAINED_BASE_LR * PRETRAINED_REFERENCE_HIDDEN / start.hidden_size
    base_reason = f"{PRETRAINED_BASE_LR:g} × 768/{start.hidden_size}"
    boost = min(MAX_SHORT_RUN_BOOST, math.sqrt(FEW_STEPS / steps)) if steps < FEW_STEPS else 1.0
    rate = _rounded(base * boost)
    boost_reason = f" × {boost:.2f} (only {steps} steps: sqrt({FEW_STEPS}/{steps}), at most {MAX_SHORT_RUN_BOOST:g})" \
        if boost > 1 else f" ({steps} steps)"
    warmup = 0.1 if steps < FEW_STEPS else 0.06
    return rate, warmup, f"{start.describe()}: {base_reason}{boost_reason} = {rate:.2g}"


def _rounded(rate: float) -> float:
    """Two significant digits: a rate written in a report or a YAML file reads as chosen, not computed."""
    return float(f"{rate:.2g}")


AUTO = "auto"


def resolve_auto(training, start: Start, train_examples: int) -> str | None:
    """Resolve ``auto`` in ``training.learning_rate`` and ``training.warmup_ratio`` (a
    TrainingConfig) in place with :func:`choose_learning_rate`'s values. An auto rate also sets
    the epochs of :func:`choose_epochs` (at least :data:`MIN_STEPS` steps) when the run is set
    in epochs, and early stopping waits for them (a dev F1 of one lucky entity early on, then three
    evaluations at 0, stopped a 300-step run at step 40): "auto" adapts the schedule to the data,
    not only the rate. Returns the reason to record in the run summary, or None when neither was
    auto (then nothing changes)."""
    if AUTO not in (training.learning_rate, training.warmup_ratio):
        return None
    raised = None
    batch = training.batch_size * training.gradient_accumulation_steps  # examples per optimizer step, one process
    if training.learning_rate == AUTO and training.max_steps == 0:
        training.epochs, raised = choose_epochs(train_examples, batch, training.epochs)
        if raised:  # the steps a small data set needs are not cut short by early stopping: best/ is still chosen on dev
            training.min_epochs = max(training.min_epochs, training.epochs)
            raised += ", all run (early stopping waits for them; the best on dev is kept)"
    rate, warmup, reason = choose_learning_rate(start, train_examples, batch, training.epochs, training.max_steps)
    if training.learning_rate == AUTO:
        training.learning_rate = rate
    if training.warmup_ratio == AUTO:
        training.warmup_ratio = warmup
    return "; ".join([f"learning rate {training.learning_rate:g}, warm-up {training.warmup_ratio:g}: {reason}",
                      *([raised] if raised else [])])
