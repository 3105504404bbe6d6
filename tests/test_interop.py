import pytest
import torch
import transformers

from nlu.config import EncoderConfig
from nlu.errors import CheckpointError, ConfigError
from nlu.interop import from_transformers, to_transformers
from nlu.model import EncoderModel, ForSequenceClassification, ForTokenClassification
from nlu.parity import PARITY_CONFIGS, check

def test_parity_with_transformers_in_every_config_both_directions():
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as a user may have set them
    try:
        result = check()  # what scripts/check_hf_parity.py and the GPU check run
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32  # off for the check only
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert set(result["differences"]) == set(PARITY_CONFIGS)
    for name, differences in result["differences"].items():
        assert len(differences) == 2 * 7, name  # two directions × (hidden, pooled, mlm, nsp, loss, sequence, token)
        worst = max(differences, key=differences.get)
        assert differences[worst] <= 1e-5, f"{name} {worst}: {differences[worst]:.2e}"
    assert result["ok"] and result["tolerance"] == 1e-5


def test_a_transformers_model_object_imports_with_its_own_copy_of_the_weights():
    labels = ["O", "B-PER", "I-PER"]
    config = transformers.BertConfig(**PARITY_CONFIGS["tiny"], id2label=dict(enumerate(labels)),
                                     label2id={label: i for i, label in enumerate(labels)})
    theirs = transformers.BertForTokenClassification(config).eval()
    ours = from_transformers(theirs).eval()
    assert isinstance(ours, ForTokenClassification) and ours.config.labels == labels
    ids = torch.randint(1, 97, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, theirs(input_ids=ids).logits, atol=1e-5, rtol=0)
        ours.encoder.embeddings.word_embeddings.weight.add_(1.0)  # training one must not move the other
    assert not torch.equal(ours.encoder.embeddings.word_embeddings.weight, theirs.bert.embeddings.word_embeddings.weight)


def test_exported_token_classifier_loads_in_transformers_auto_classes(tmp_path, tiny_config):
    tiny_config.labels = ["O", "B-LOC", "I-LOC"]
    model = ForTokenClassification(tiny_config).eval()
    to_transformers(model, tmp_path)
    loaded = transformers.AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    assert type(loaded).__name__ == "BertForTokenClassification"
    assert loaded.config.id2label == {0: "O", 1: "B-LOC", 2: "I-LOC"}
    ids = torch.randint(1, 101, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(ids).logits, atol=1e-5, rtol=0)


def test_bert_model_checkpoint_seeds_a_token_classifier(tmp_path):
    bert = transformers.BertModel(transformers.BertConfig(**PARITY_CONFIGS["tiny"]))
    bert.save_pretrained(tmp_path)
    tagger = from_transformers(tmp_path, ForTokenClassification, labels=["O", "B-X"])
    assert tagger.newly_initialized == ["classifier.linear.weight", "classifier.linear.bias"]
    torch.testing.assert_close(tagger.encoder.embeddings.word_embeddings.weight,
                               bert.embeddings.word_embeddings.weight)


def test_variants_transformers_cannot_express_are_refused(tmp_path, tiny_config):
    with pytest.raises(ConfigError, match="post-LN layers only"):
        to_transformers(EncoderModel(EncoderConfig(**{**tiny_config.to_dict(), "norm_placement": "pre"})), tmp_path)
    with pytest.raises(ConfigError, match="pooling='mean' cannot be exported"):
        config = EncoderConfig(**{**tiny_config.to_dict(), "pooling": "mean", "labels": ["a", "b"]})
        to_transformers(ForSequenceClassification(config), tmp_path)


def test_non_bert_checkpoints_are_refused_clearly(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "architectures": ["BertModel"]}')
    with pytest.raises(CheckpointError, match="only BERT checkpoints can be imported"):
        from_transformers(tmp_path)
    with pytest.raises(CheckpointError, match="config.json: missing"):
        from_transformers(tmp_path / "absent")


def test_a_bert_model_saved_without_its_pooler_loads_with_a_fresh_one(tmp_path):
    """multilingual-e5 and other sentence encoders ship BertModel weights without the pooler."""
    bert = transformers.BertModel(transformers.BertConfig(**PARITY_CONFIGS["tiny"]), add_pooling_layer=False).eval()
    bert.save_pretrained(tmp_path)
    encoder = from_transformers(tmp_path).eval()
    assert type(encoder).__name__ == "EncoderModel"
    assert encoder.newly_initialized == ["pooler.dense.weight", "pooler.dense.bias"]
    assert encoder.pooler.dense.bias.abs().max() == 0 and 0.01 < encoder.pooler.dense.weight.std() < 0.03
    ids = torch.randint(1, bert.config.vocab_size, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(encoder(ids).hidden_states, bert(ids).last_hidden_state, atol=1e-5, rtol=0)
