"""Numerical parity with transformers' BERT: the proof that nlu computes the same function.

Random transformers models are saved, imported through :func:`from_transformers`, exported
back through :func:`to_transformers` and reloaded by transformers itself; every output is
compared on a padded batch. :func:`check` is what ``scripts/check_hf_parity.py`` and the GPU
check (``scripts/gpu_check.py``) run, and the test suite too.
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

DEVICE_CONFIG = dict(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                     max_position_embeddings=128, type_vocab_size=2)
"""On a GPU also a model with 64-wide heads on a batch of 8 × 96: the sizes at which its attention
kernels and tensor-core paths are the ones real models take (the small configs may take others)."""

TOLERANCES = {False: 1e-5, True: 5e-2}
"""fp32 and bf16; bf16 keeps 8 significant bits, so 5% of the largest output leaves room for the sides
rounding at different places and nothing for a wrong computation."""


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


OUTPUTS = {  # architecture → (nlu's output, transformers' output, compared at real tokens only)
    "BertModel": (("hidden_states", "last_hidden_state", True), ("pooled", "pooler_output", False)),
    "BertForPreTraining": (("mlm_logits", "prediction_logits", True), ("nsp_logits", "seq_relationship_logits", False)),
    "BertForSequenceClassification": (("logits", "logits", False),),
    "BertForTokenClassification": (("logits", "logits", True),),
}


@torch.no_grad()
def compare_with_transformers(bert_options: dict, batch: int = 3, length: int = 13, seed: int = 0,
                              device: torch.device | str = "cpu", bf16: bool = False) -> dict[str, float]:
    """Max absolute difference per output (``direction/architecture.output``) between nlu and
    transformers with the same weights on DEVICE, both directions: transformers imported into nlu,
    and nlu exported and reloaded by transformers. With BF16 both sides run under bf16 autocast,
    and each difference is relative to the largest |output| transformers gives in fp32: bf16 keeps
    8 significant bits, and the two sides round at different places (fused QKV, attention kernels)."""
    import transformers

    torch.manual_seed(seed)
    device = torch.device(device)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    config = transformers.BertConfig(
        **bert_options, id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)}
    )
    inputs = {key: value.to(device) for key, value in
              parity_batch(config.vocab_size, config.type_vocab_size, batch, length, seed).items()}
    mlm_labels = torch.full_like(inputs["input_ids"], -100)
    mlm_labels[:, 1::4] = inputs["input_ids"][:, 1::4]
    mlm_labels[inputs["attention_mask"] == 0] = -100
    labelled = {"mlm_labels": mlm_labels, "nsp_labels": torch.arange(batch, device=device) % 2}
    differences: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for architecture in OUTPUTS:
            theirs = getattr(transformers, architecture)(config).eval()
            theirs.save_pretrained(scratch / architecture)
            ours = from_transformers(scratch / architecture).to(device).eval()
            to_transformers(ours, scratch / f"{architecture}-exported")
            reloaded = getattr(transformers, architecture).from_pretrained(scratch / f"{architecture}-exported")
            for direction, reference in (("import", theirs.to(device)), ("export", reloaded.to(device).eval())):
                for name, value in _output_differences(architecture, ours, reference, inputs, labelled, bf16).items():
                    differences[f"{direction}/{architecture}.{name}"] = value
    return differences


def _output_differences(architecture: str, ours, theirs, inputs: dict, labelled: dict, bf16: bool) -> dict[str, float]:
    real = inputs["attention_mask"]
    pretraining = architecture == "BertForPreTraining"
    hf_labels = {"labels": labelled["mlm_labels"], "next_sentence_label": labelled["nsp_labels"]} if pretraining else {}
    fp32 = theirs(**inputs, **hf_labels)
    with torch.autocast(real.device.type, dtype=torch.bfloat16, enabled=bf16):
        out_ours, out_theirs = ours(**inputs), theirs(**inputs, **hf_labels) if bf16 else fp32
        # nlu's loss scores the masked positions only (its logits then come at those rows alone)
        ours_loss = ours(**inputs, **labelled).loss if pretraining else None
    pairs = [(getattr(out_ours, mine), getattr(out_theirs, their), getattr(fp32, their), real if tokenwise else None, mine)
             for mine, their, tokenwise in OUTPUTS[architecture]]
    if pretraining:
        pairs.append((ours_loss, out_theirs.loss, fp32.loss, None, "loss (sparse vs dense)"))
    differences = {}
    for mine, their, reference, mask, name in pairs:
        scale = float((reference[mask.bool()] if mask is not None else reference).abs().max()) if bf16 else 1.0
        differences[name] = max_difference(mine, their, mask) / scale
    return differences


def check(device: torch.device | str = "cpu", bf16: bool = False, tolerance: float | None = None) -> dict:
    """Every config's differences, the worst and whether it is within the tolerance (default
    :data:`TOLERANCES`); fp32 with TF32 off (restored after), so that a GPU computes what the CPU does."""
    device = str(device)
    tolerance = TOLERANCES[bf16] if tolerance is None else tolerance
    runs = {name: (options, 3, 13 if name == "tiny" else 17) for name, options in PARITY_CONFIGS.items()}
    if torch.device(device).type != "cpu":
        runs["head size 64, 8 × 96"] = (DEVICE_CONFIG, 8, 96)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        differences = {name: compare_with_transformers(options, batch, length, device=device, bf16=bf16)
                       for name, (options, batch, length) in runs.items()}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    worst = max(value for values in differences.values() for value in values.values())
    return {"device": device, "bf16": bf16, "tolerance": tolerance, "differences": differences, "worst": worst,
            "ok": worst <= tolerance, "configs": {name: options for name, (options, _, _) in runs.items()}}
