"""training.compile: same results as eager, and a clean fallback where compiling is impossible."""

import pytest
import torch

from nlu.config import EncoderConfig
from nlu.model import ForTokenClassification
from nlu.training.loop import compile_plugin


def test_compile_is_off_unless_asked():
    assert compile_plugin(False) is None


def test_a_machine_that_cannot_compile_trains_eagerly_with_a_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="torch.compile does not work here.*no C\\+\\+ compiler"):
        assert compile_plugin(True) is None


@pytest.mark.slow
def test_compiled_model_gives_the_eager_loss_and_gradients():
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=50, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                           max_position_embeddings=16, hidden_dropout=0.0, attention_dropout=0.0,
                           labels=["O", "B-X", "I-X"])
    model = ForTokenClassification(config)
    ids = torch.randint(1, 50, (3, 10))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    labels = torch.randint(0, 3, (3, 10)).masked_fill(mask == 0, -100)
    eager = model(ids, attention_mask=mask, labels=labels).loss
    eager.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, backend=compile_plugin(True).backend.value.lower(), dynamic=True)
    loss = compiled(ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    torch.testing.assert_close(loss, eager, atol=1e-5, rtol=1e-5)
    for want, parameter in zip(expected, model.parameters()):
        torch.testing.assert_close(parameter.grad, want, atol=1e-5, rtol=1e-4)
