"""Encoder variants: a pooling choice made when fine-tuning sits on top of the pretrained encoder.

(Whether pre-LN trains where post-LN stalls is a research finding, not a property to assert: it
is measured and reported by scripts/ablate.py, reports/ablation.md "LayerNorm placement at a high
learning rate".)"""

import pytest
import torch

from nlu.config import EncoderConfig
from nlu.model import ForPreTraining


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_pooling_can_be_changed_when_fine_tuning_from_a_pretrained_checkpoint(pooling, tmp_path, wordpiece_tokenizer):
    """model.pooling=... on top of init: the encoder comes from the checkpoint, the pooling from the
    override, and the NSP-trained [CLS] dense layer, which mean/max pooling has no use for, is dropped."""
    from nlu.model import ForSequenceClassification
    from nlu.settings import load_settings
    from nlu.tasks.finetune import initial_model
    from nlu.tokenizer import save_tokenizer

    tokenizer = wordpiece_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"])
    pretrained = ForPreTraining(EncoderConfig(vocab_size=len(tokenizer), hidden_size=16, num_layers=1, num_heads=2,
                                              intermediate_size=32, max_position_embeddings=16))
    pretrained.save_pretrained(tmp_path)
    save_tokenizer(tokenizer, tmp_path)
    settings = load_settings(None, ["task=classify", f"init={tmp_path}", f"model.pooling={pooling}"])
    model, _ = initial_model(settings, ForSequenceClassification, ["neg", "pos"], None)
    assert model.config.pooling == pooling
    assert not any(name.startswith("pooler.") for name in model.state_dict())
    for name, tensor in pretrained.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor), name
    model.save_pretrained(tmp_path / "tuned")
    assert ForSequenceClassification.from_pretrained(tmp_path / "tuned").config.pooling == pooling
