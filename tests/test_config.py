import pytest

from nlu.config import EncoderConfig
from nlu.errors import ConfigError


def test_defaults_are_valid_and_derive_head_size():
    config = EncoderConfig()
    assert config.head_size == config.hidden_size // config.num_heads


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(hidden_size=30, num_heads=4), "divisible by num_heads"),
        (dict(num_layers=0), "num_layers must be a positive integer"),
        (dict(hidden_dropout=1.0), "hidden_dropout must be in [0, 1)"),
        (dict(activation="swish"), "activation must be one of gelu, gelu_tanh, relu"),
        (dict(norm_placement="middle"), "norm_placement must be one of post, pre"),
        (dict(pooling="first"), "pooling must be one of cls, mean, max"),
        (dict(pad_token_id=30522), "pad_token_id (30522) must be a token id below vocab_size"),
        (dict(labels=["O", "O"]), "labels must be unique"),
        (dict(layer_norm_eps=0.0), "layer_norm_eps must be positive"),
    ],
)
def test_bad_values_fail_with_a_clear_message(options, message):
    with pytest.raises(ConfigError) as error:
        EncoderConfig(**options)
    assert message in str(error.value)


def test_unknown_keys_are_refused_and_named():
    with pytest.raises(ConfigError, match=r"tasks/x.yaml: unknown option\(s\) \['hiden_size'\]"):
        EncoderConfig.from_dict({"hiden_size": 64}, source="tasks/x.yaml")


def test_dict_round_trip():
    config = EncoderConfig(hidden_size=64, num_heads=8, labels=["a", "b"], norm_placement="pre")
    assert EncoderConfig.from_dict(config.to_dict()) == config
