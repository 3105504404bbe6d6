import json

import pytest
import torch

from nlu.errors import CheckpointError
from nlu.model import ForPreTraining, ForSequenceClassification, ForTokenClassification, load_model


def test_round_trip_restores_identical_weights_and_outputs(tmp_path, tiny_config):
    tiny_config.labels = ["a", "b", "c"]
    tiny_config.pooling = "mean"
    model = ForSequenceClassification(tiny_config).eval()
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path).eval()
    assert type(loaded) is ForSequenceClassification and loaded.config == tiny_config
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    ids = torch.randint(1, 101, (2, 7))
    assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_pretraining_checkpoint_seeds_a_new_classifier(tmp_path, tiny_config):
    pretrained = ForPreTraining(tiny_config)
    pretrained.save_pretrained(tmp_path)
    tagger = ForTokenClassification.from_pretrained(tmp_path, labels=["O", "B-X", "I-X"])
    assert tagger.newly_initialized == ["classifier.linear.weight", "classifier.linear.bias"]
    torch.testing.assert_close(tagger.encoder.state_dict(), pretrained.encoder.state_dict())


def test_missing_files_are_named(tmp_path, tiny_config):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        ForPreTraining.from_pretrained(tmp_path / "nowhere")
    ForPreTraining(tiny_config).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model.safetensors: missing"):
        ForPreTraining.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config.json: missing"):
        ForPreTraining.from_pretrained(tmp_path)


def test_corrupt_files_are_named(tmp_path, tiny_config):
    ForPreTraining(tiny_config).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"model.safetensors: cannot be read as safetensors"):
        ForPreTraining.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 32,\n "oops"')
    with pytest.raises(CheckpointError, match=r"config.json:2: not valid JSON"):
        ForPreTraining.from_pretrained(tmp_path)


def test_mismatched_checkpoint_lists_missing_and_unexpected_keys(tmp_path, tiny_config):
    model = ForPreTraining(tiny_config)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_layers"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as error:
        ForPreTraining.from_pretrained(tmp_path)
    assert "missing key encoder.stack.layers.2.attention.qkv.weight" in str(error.value)
    config["num_layers"], config["hidden_size"], config["num_heads"] = 2, 64, 4
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"key encoder.embeddings.word_embeddings.weight has shape \(101, 32\), "
                                              r"the model expects \(101, 64\)"):
        ForPreTraining.from_pretrained(tmp_path)


def test_same_architecture_must_match_exactly(tmp_path, tiny_config):
    tiny_config.labels = ["a", "b"]
    model = ForSequenceClassification(tiny_config)
    model.save_pretrained(tmp_path)
    from safetensors.torch import load_file, save_file

    state = load_file(str(tmp_path / "model.safetensors"))
    del state["classifier.linear.bias"]
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as error:
        ForSequenceClassification.from_pretrained(tmp_path)
    assert "missing key classifier.linear.bias" in str(error.value)
    assert "unexpected key extra.weight" in str(error.value)


def test_bad_override_is_a_checkpoint_error(tmp_path, tiny_config):
    ForPreTraining(tiny_config).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"unknown option\(s\) \[.hidden.\]"):
        ForPreTraining.from_pretrained(tmp_path, hidden=3)


def test_a_classifier_with_other_labels_starts_a_fresh_head_even_if_the_shape_fits(tmp_path, tiny_config):
    tiny_config.labels = ["neg", "pos"]
    ForSequenceClassification(tiny_config).save_pretrained(tmp_path)
    reordered = ForSequenceClassification.from_pretrained(tmp_path, labels=["pos", "neg"])
    assert reordered.newly_initialized == ["classifier.linear.weight", "classifier.linear.bias"]
    same = ForSequenceClassification.from_pretrained(tmp_path, labels=["neg", "pos"])
    assert same.newly_initialized == []
