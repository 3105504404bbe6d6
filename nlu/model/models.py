"""The encoder and the models built on it: pretraining, sequence and token classification.

Each model returns a loss when labels are given (positions labelled -100 are ignored), so the
training loop treats every task the same way.
"""

from __future__ import annotations

from collections.abc import Collection

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nlu import checkpoint
from nlu.config import EncoderConfig
from nlu.constants import IGNORE_INDEX
from nlu.model.embeddings import Embeddings
from nlu.model.heads import Classifier, MaskedLanguageModelHead, Pooler
from nlu.model.layers import EncoderStack
from nlu.model.padding import padding_of


@dataclass
class EncoderOutput:
    hidden_states: torch.Tensor
    pooled: torch.Tensor | None


@dataclass
class ClassifierOutput:
    """``logits``: (batch, labels) per sequence or (batch, seq, labels) per token. A token model
    given labels computes only the labelled positions: then ``logits`` is None and
    ``labelled_logits`` holds them, (n_labelled, labels) in row-major order, beside the loss."""

    logits: torch.Tensor | None
    loss: torch.Tensor | None = None
    labelled_logits: torch.Tensor | None = None


@dataclass
class PreTrainingOutput:
    """With ``mlm_labels`` the MLM logits cover only the masked positions (n_masked, vocab),
    in row-major order, and ``mlm_targets`` holds their labels; without, they are dense."""

    mlm_logits: torch.Tensor
    nsp_logits: torch.Tensor
    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None
    mlm_targets: torch.Tensor | None = None


def mean_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the positions that carry a label; a batch with none (a window of only
    continuation sub-tokens, a short sequence without a masked token) gives zero, not NaN, and
    still a graph over the model, so every process of a distributed run takes the backward step."""
    return F.cross_entropy(logits, targets) if targets.numel() else logits.sum() * 0.0


class Encoder(nn.Module):
    """Embeddings followed by the layer stack: token ids in, contextual vectors out."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.embeddings = Embeddings(config)
        self.stack = EncoderStack(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        outputs_at: torch.Tensor | Literal["first"] | None = None,
    ) -> torch.Tensor:
        """Returns (batch, seq, hidden); padded positions hold zeros.

        ``outputs_at`` (batch, seq) boolean, real tokens only: return just those positions'
        vectors, (n, hidden) in row-major order, and run the last layer only for them. Heads that
        read a few positions ([CLS], the masked tokens) skip most of the last layer's work.
        ``"first"``: each sequence's first token, (batch, hidden), found without a device sync.
        """
        embedded = self.embeddings(input_ids, token_type_ids)
        padding = padding_of(attention_mask, input_ids)
        tokens = padding.unpad(embedded)
        if outputs_at is not None:
            rows = padding.first_rows() if isinstance(outputs_at, str) else padding.rows(outputs_at)
            return self.stack(tokens, padding, rows)
        return padding.pad(self.stack(tokens, padding))


def pool_and_gather(encoder: Encoder, pooler: Pooler, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    token_type_ids: torch.Tensor | None, positions: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The pooled vector per sequence and the final vectors at ``positions`` (row-major), if given.

    BERT's ``cls`` pooler reads one position; with the masked positions that is all pretraining
    reads (~15% of tokens), so the last layer runs for those positions only (``outputs_at``).
    The result is the same as gathering from the full output.
    """
    if pooler.pooling != "cls":
        hidden = encoder(input_ids, attention_mask, token_type_ids)
        return pooler(hidden, attention_mask), None if positions is None else hidden[positions]
    if positions is None:
        return pooler.pool_first(encoder(input_ids, attention_mask, token_type_ids, outputs_at="first")), None
    first = torch.zeros_like(input_ids, dtype=torch.bool)
    first[:, 0] = True
    needed = first | positions
    selected = encoder(input_ids, attention_mask, token_type_ids, outputs_at=needed)
    # Each needed position's row in `selected` is the count of needed positions before it. The first
    # tokens' rows are read from that count, which on a GPU costs no wait; the masked rows are as
    # many as the mask's values say, so gathering them is one (inevitable) sync.
    row_of = needed.flatten().cumsum(0) - 1
    first_rows = row_of[torch.arange(0, needed.numel(), needed.shape[1], device=needed.device)]
    masked_rows = row_of[positions.flatten()]
    return pooler.pool_first(selected.index_select(0, first_rows)), selected.index_select(0, masked_rows)


class NluModel(nn.Module):
    """Shared by every model: BERT's initialisation and the checkpoint format."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config

    def init_weights(self, only: Collection[str] | None = None) -> None:
        """BERT's initialisation; with ``only`` (parameter names), just the modules holding them —
        how a loaded model starts its fresh heads without drawing numbers for the rest."""
        std = self.config.initializer_range
        for prefix, module in self.named_modules():
            if only is not None and not any(f"{prefix}.{name}" in only or (not prefix and name in only)
                                            for name, _ in module.named_parameters(recurse=False)):
                continue
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
                if module.padding_idx is not None:
                    with torch.no_grad():
                        module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, MaskedLanguageModelHead):
                nn.init.zeros_(module.bias)

    def save_pretrained(self, directory: str | Path) -> None:
        checkpoint.save(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **config_overrides) -> "NluModel":
        """Load a checkpoint; heads this class has but the checkpoint lacks start fresh, so a
        pretraining checkpoint can seed a classifier (pass ``labels=[...]``)."""
        return checkpoint.load(cls, directory, config_overrides)


class EncoderModel(NluModel):
    """The bare encoder with its pooler, like transformers' ``BertModel``."""

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config)
        self.init_weights()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> EncoderOutput:
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)
        return EncoderOutput(hidden, self.pooler(hidden, attention_mask))


class ForPreTraining(NluModel):
    """Masked-language modelling plus next-sentence prediction, BERT's pretraining objective."""

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config)
        self.mlm_head = MaskedLanguageModelHead(config)
        self.nsp_head = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        nsp_labels: torch.Tensor | None = None,
    ) -> PreTrainingOutput:
        embedding_weight = self.encoder.embeddings.word_embeddings.weight
        if mlm_labels is None:
            hidden = self.encoder(input_ids, attention_mask, token_type_ids)
            nsp_logits = self.nsp_head(self.pooler(hidden, attention_mask))
            return PreTrainingOutput(self.mlm_head(hidden, embedding_weight), nsp_logits)
        # Sparse prediction: only ~15% of positions are masked, and the vocabulary projection is
        # the largest matmul of a small model, so only those rows are projected (and, with the
        # cls pooler, only those rows and [CLS] go through the last layer).
        masked = mlm_labels != IGNORE_INDEX
        pooled, masked_hidden = pool_and_gather(self.encoder, self.pooler, input_ids, attention_mask, token_type_ids,
                                                masked)
        nsp_logits = self.nsp_head(pooled)
        mlm_targets = mlm_labels[masked]
        mlm_logits = self.mlm_head(masked_hidden, embedding_weight)
        mlm_loss = mean_cross_entropy(mlm_logits, mlm_targets)
        output = PreTrainingOutput(mlm_logits, nsp_logits, mlm_loss=mlm_loss, mlm_targets=mlm_targets)
        output.loss = mlm_loss
        if nsp_labels is not None:
            output.nsp_loss = F.cross_entropy(nsp_logits, nsp_labels)
            output.loss = mlm_loss + output.nsp_loss
        return output


class ForSequenceClassification(NluModel):
    """Pooled sequence vector → classifier. Sentence pairs use segment (token type) ids."""

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config)
        self.classifier = Classifier(config)
        self.init_weights()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> ClassifierOutput:
        pooled, _ = pool_and_gather(self.encoder, self.pooler, input_ids, attention_mask, token_type_ids)
        logits = self.classifier(pooled)
        loss = None if labels is None else F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
        return ClassifierOutput(logits, loss)


class ForTokenClassification(NluModel):
    """A label per token (NER). Like BERT's, this model has no pooler."""

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        self.encoder = Encoder(config)
        self.classifier = Classifier(config)
        self.init_weights()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> ClassifierOutput:
        """``logits`` (batch, seq, labels). With ``labels`` only the labelled positions are
        computed, into ``labelled_logits`` (n_labelled, labels), like ForPreTraining's MLM logits:
        the loss reads nothing else, and [CLS], [SEP] and the later sub-tokens of words (a third
        of a tweet's tokens) then skip the last layer and the classifier."""
        if labels is None:
            return ClassifierOutput(self.classifier(self.encoder(input_ids, attention_mask, token_type_ids)))
        labelled = labels != IGNORE_INDEX
        logits = self.classifier(self.encoder(input_ids, attention_mask, token_type_ids, outputs_at=labelled))
        return ClassifierOutput(None, mean_cross_entropy(logits, labels[labelled]), labelled_logits=logits)


MODEL_CLASSES: dict[str, type[NluModel]] = {
    cls.__name__: cls for cls in (EncoderModel, ForPreTraining, ForSequenceClassification, ForTokenClassification)
}


def load_model(directory: str | Path, **config_overrides) -> NluModel:
    """Load a checkpoint as the model class it was saved from."""
    return MODEL_CLASSES[checkpoint.architecture(directory)].from_pretrained(directory, **config_overrides)
