"""Numerical parity with transformers' BERT: the proof that nlu computes the same function.

Random transformers models are saved, imported through :func:`from_transformers`, exported
back through :func:`to_transformers` and reloaded by transformers itself; every output is
compared on a padded batch. Used by ``scripts/check_hf_parity.py`` and the test suite.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from nlu.interop import from_transformers, to_transformers

PARITY_CONFIGS = {
    "tiny": dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64, type_vocab_size=2),
    "small-odd": dict(vocab_size=301, hidden_size=48, num_hidden_layers=3, num_attention_heads=6,
                      intermediate_size=80, max_position_embeddings=40, type_vocab_size=3, hidden_act="gelu_new",
                      layer_norm_eps=1e-6),
}


def parity_batch(vocab_size: int, type_vocab_size: int, batch: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    """Random ids with ragged padding (the first row unpadded) and random segments."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, vocab_size, (batch, length), generator=generator)
    lengths = torch.randint(length // 2, length + 1, (batch,), generator=generator)
    lengths[0] = length
    attention_mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    token_type_ids = torch.randint(0, type_vocab_size, (batch, length), generator=generator) * attention_mask
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def max_difference(ours: torch.Tensor, theirs: torch.Tensor, real: torch.Tensor | None = None) -> float:
    """Over real tokens only when ``real`` (the attention mask) is given: outputs at padded
    positions carry no meaning (nlu leaves zeros there, transformers whatever padding computed)."""
    if ours.shape != theirs.shape:
        raise AssertionError(f"shape {tuple(ours.shape)} != {tuple(theirs.shape)}")
    if real is not None:
        ours, theirs = ours[real.bool()], theirs[real.bool()]
    return float((ours.double() - theirs.double()).abs().max())


@torch.no_grad()
def compare_with_transformers(bert_options: dict, batch: int = 3, length: int = 13, seed: int = 0) -> dict[str, float]:
    """Max absolute difference per output between nlu and transformers, both directions."""
    import transformers

    torch.manual_seed(seed)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    config = transformers.BertConfig(
        **bert_options, id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)}
    )
    inputs = parity_batch(config.vocab_size, config.type_vocab_size, batch, length, seed)
    mlm_labels = torch.full_like(inputs["input_ids"], -100)
    mlm_labels[:, 1::4] = inputs["input_ids"][:, 1::4]
    mlm_labels[inputs["attention_mask"] == 0] = -100
    nsp_labels = torch.arange(batch) % 2
    differences: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for architecture in ("BertModel", "BertForPreTraining", "BertForSequenceClassification",
                             "BertForTokenClassification"):
            theirs = getattr(transformers, architecture)(config).eval()
            theirs.save_pretrained(scratch / architecture)
            ours = from_transformers(scratch / architecture).eval()
            to_transformers(ours, scratch / f"{architecture}-exported")
            reloaded = getattr(transformers, architecture).from_pretrained(scratch / f"{architecture}-exported").eval()
            for direction, reference in (("import", theirs), ("export", reloaded)):
                for name, value in _output_differences(architecture, ours, reference, inputs, mlm_labels, nsp_labels).items():
                    differences[f"{direction}/{name}"] = value
    return differences


def _output_differences(architecture, ours, theirs, inputs, mlm_labels, nsp_labels) -> dict[str, float]:
    out_ours, out_theirs = ours(**inputs), theirs(**inputs)
    real = inputs["attention_mask"]
    if architecture == "BertModel":
        return {
            "hidden_states": max_difference(out_ours.hidden_states, out_theirs.last_hidden_state, real),
            "pooled": max_difference(out_ours.pooled, out_theirs.pooler_output),
        }
    if architecture == "BertForPreTraining":
        ours_loss = ours(**inputs, mlm_labels=mlm_labels, nsp_labels=nsp_labels).loss
        theirs_loss = theirs(**inputs, labels=mlm_labels, next_sentence_label=nsp_labels).loss
        return {
            "mlm_logits": max_difference(out_ours.mlm_logits, out_theirs.prediction_logits, real),
            "nsp_logits": max_difference(out_ours.nsp_logits, out_theirs.seq_relationship_logits),
            "pretraining_loss(sparse vs dense)": max_difference(ours_loss, theirs_loss),
        }
    if architecture == "BertForSequenceClassification":
        return {"sequence_logits": max_difference(out_ours.logits, out_theirs.logits)}
    return {"token_logits": max_difference(out_ours.logits, out_theirs.logits, real)}
