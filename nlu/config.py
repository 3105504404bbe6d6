"""The encoder's hyper-parameters, in one validated dataclass.

Everything a checkpoint needs to rebuild the network lives here, so ``config.json`` beside
the weights is the whole description of a model. Validation happens at construction time
so that a typo in a YAML file fails before any tensor is allocated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from nlu.errors import ConfigError
from nlu.options import fill

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
NORM_PLACEMENTS = ("post", "pre")
POOLINGS = ("cls", "mean", "max")
POSITION_ENCODINGS = ("learned", "sinusoidal", "rotary")


@dataclass
class EncoderConfig:
    vocab_size: int = 30522
    """Rows of the token embedding table; taken from the tokenizer for a model built from scratch."""
    hidden_size: int = 256
    """Width of every token vector between layers."""
    num_layers: int = 4
    """Transformer layers in the stack."""
    num_heads: int = 4
    """Attention heads per layer; hidden_size must be divisible by it."""
    intermediate_size: int = 1024
    """Width of each layer's feed-forward block (BERT: 4 × hidden_size)."""
    max_position_embeddings: int = 512
    """Rows of the learned position table: the longest input with learned positions."""
    type_vocab_size: int = 2
    """Segment (token type) ids: 2 for BERT's first and second text of a pair."""
    hidden_dropout: float = 0.1
    """Dropout on the embeddings and on each sub-layer's output."""
    attention_dropout: float = 0.1
    """Dropout on the attention probabilities."""
    layer_norm_eps: float = 1e-12
    """Epsilon added to the variance in every LayerNorm."""
    activation: str = "gelu"
    """Feed-forward activation: gelu, gelu_tanh or relu."""
    pad_token_id: int = 0
    """Id of the padding token, whose embedding row gets no gradient; taken from the tokenizer from scratch."""
    initializer_range: float = 0.02
    """Standard deviation of the normal distribution new weights are drawn from."""
    norm_placement: str = "post"
    """post (BERT: LayerNorm after each residual addition) or pre (LayerNorm before each sub-layer)."""
    pooling: str = "cls"
    """The sequence vector a classifier reads: cls (BERT's pooler over [CLS]), mean or max over the tokens."""
    position_encoding: str = "learned"
    """learned (BERT's absolute embeddings), sinusoidal (fixed, added like them) or rotary
    (queries and keys rotated by position inside attention). The last two accept inputs longer
    than max_position_embeddings."""
    rotary_theta: float = 10000.0
    """Base of the rotary frequencies (position_encoding=rotary)."""
    classifier_dropout: float | None = None
    """Dropout before a classification head; None uses hidden_dropout."""
    labels: list[str] = field(default_factory=list)
    """Label names of a classification head in output order; fine-tuning sets them from the training data."""

    def __post_init__(self) -> None:
        self.labels = list(self.labels)
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads}): "
                f"each head gets hidden_size / num_heads dimensions"
            )
        for name in ("hidden_dropout", "attention_dropout", "classifier_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"pad_token_id ({self.pad_token_id}) must be a token id below vocab_size ({self.vocab_size})")
        self._check_choice("activation", ACTIVATIONS)
        self._check_choice("norm_placement", NORM_PLACEMENTS)
        self._check_choice("pooling", POOLINGS)
        self._check_choice("position_encoding", POSITION_ENCODINGS)
        if self.position_encoding == "rotary" and self.head_size % 2:
            raise ConfigError(f"rotary positions rotate pairs of dimensions: head size {self.head_size} must be even")
        if not self.rotary_theta > 1:
            raise ConfigError(f"rotary_theta must be greater than 1, got {self.rotary_theta!r}")
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"labels must be unique, got {self.labels}")

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        if getattr(self, name) not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "EncoderConfig":
        """Build from a mapping, refusing unknown keys so that a misspelt option is not ignored."""
        return fill(cls, values, source if callable(source) else f"{source}")
