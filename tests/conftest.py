import pytest
import torch

from nlu.config import EncoderConfig


@pytest.fixture
def tiny_config() -> EncoderConfig:
    return EncoderConfig(vocab_size=101, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                         max_position_embeddings=48, hidden_dropout=0.0, attention_dropout=0.0)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
