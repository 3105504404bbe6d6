import math

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from nlu.config import EncoderConfig
from nlu.model import EncoderModel, ForPreTraining, ForSequenceClassification, ForTokenClassification
from nlu.model import embeddings as embeddings_module
from nlu.model import padding as padding_module

LABELS = ["O", "B-PER", "I-PER"]


def _batch(config, batch=2, length=9, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, config.vocab_size, (batch, length), generator=generator)


@pytest.mark.parametrize("norm_placement", ["post", "pre"])
def test_output_shapes(tiny_config, norm_placement):
    tiny_config.norm_placement = norm_placement
    tiny_config.labels = LABELS
    ids = _batch(tiny_config)
    encoded = EncoderModel(tiny_config).eval()(ids)
    assert encoded.hidden_states.shape == (2, 9, 32) and encoded.pooled.shape == (2, 32)
    pretraining = ForPreTraining(tiny_config).eval()(ids)
    assert pretraining.mlm_logits.shape == (2, 9, 101) and pretraining.nsp_logits.shape == (2, 2)
    assert ForSequenceClassification(tiny_config)(ids).logits.shape == (2, 3)
    assert ForTokenClassification(tiny_config)(ids).logits.shape == (2, 9, 3)


@pytest.mark.parametrize("norm_placement", ["post", "pre"])
@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_appending_padding_changes_nothing_at_real_tokens(tiny_config, norm_placement, pooling):
    tiny_config.norm_placement, tiny_config.pooling = norm_placement, pooling
    model = EncoderModel(tiny_config).eval()
    ids = _batch(tiny_config, batch=1, length=7)
    short = model(ids, attention_mask=torch.ones_like(ids))
    padded_ids = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 5)], dim=1).long()
    long = model(padded_ids, attention_mask=mask)
    torch.testing.assert_close(long.hidden_states[:, :7], short.hidden_states, atol=1e-5, rtol=0)
    torch.testing.assert_close(long.pooled, short.pooled, atol=1e-5, rtol=0)


def use_layout(monkeypatch, layout: str) -> None:
    """Make CPU batches take LAYOUT: packed in one segment or one per length, or the masked layout
    GPUs take (every position a row, nothing read from the mask)."""
    monkeypatch.setattr(padding_module, "SEGMENT_COST_IN_PAIRS", 0 if layout == "packed, 3 segments" else 10**9)
    if layout == "masked":
        monkeypatch.setattr(padding_module, "PACKED_DEVICE_TYPES", frozenset())


LAYOUTS = ["packed, 1 segment", "packed, 3 segments", "masked"]


@pytest.mark.parametrize("position_encoding", ["learned", "rotary"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_padding_free_batch_gives_the_gradients_of_unpadded_sequences(tiny_config, position_encoding, layout,
                                                                       monkeypatch):
    """The padded batch runs packed (padding removed), its attention in one segment or in one per
    length, or masked; its loss gradient must equal the one from each sequence run alone with no
    padding at all, and padded positions must come out as zeros."""
    use_layout(monkeypatch, layout)
    tiny_config.position_encoding, tiny_config.labels = position_encoding, LABELS
    model = ForTokenClassification(tiny_config)
    lengths = [9, 4, 6]
    ids = _batch(tiny_config, batch=3, length=9, seed=3)
    mask = (torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]).long()
    padding = padding_module.padding_of(mask, ids)
    assert [(s.batch, s.length) for s in padding.segments] == {
        "packed, 1 segment": [(3, 9)], "packed, 3 segments": [(1, 4), (1, 6), (1, 9)], "masked": [(3, 9)]}[layout]
    assert padding.whole.tokens == (19 if layout.startswith("packed") else 27)
    labels = torch.randint(0, 3, (3, 9), generator=torch.Generator().manual_seed(4)).masked_fill(mask == 0, -100)
    labels[1, 2] = -100  # an unlabelled sub-token: it skips the last layer
    model(ids * mask, attention_mask=mask, labels=labels).loss.backward()
    batch_gradients = [p.grad.clone() for p in model.parameters()]
    logits = model(ids * mask, attention_mask=mask).logits
    assert logits[mask == 0].sub(model.classifier(torch.zeros(1, 32))).abs().max() < 1e-6

    model.zero_grad()  # the dense logits give the same loss gradient as the labelled rows alone
    F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100).backward()
    for batched, (name, parameter) in zip(batch_gradients, model.named_parameters()):
        torch.testing.assert_close(batched, parameter.grad, atol=1e-6, rtol=1e-4, msg=name)

    model.zero_grad()
    for row, length in enumerate(lengths):
        alone = model(ids[row:row + 1, :length], labels=labels[row:row + 1, :length])
        (alone.loss * (labels[row] != -100).sum() / (labels != -100).sum()).backward()
    for batched, (name, parameter) in zip(batch_gradients, model.named_parameters()):
        torch.testing.assert_close(batched, parameter.grad, atol=1e-6, rtol=1e-4, msg=name)


def test_attention_mask_really_masks(tiny_config):
    """Changing a masked token must not move any real token; without the mask it must."""
    model = EncoderModel(tiny_config).eval()
    ids = _batch(tiny_config, batch=1, length=8)
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    changed = ids.clone()
    changed[0, 6] = (ids[0, 6] % 100) + 1
    masked_a, masked_b = model(ids, mask).hidden_states, model(changed, mask).hidden_states
    torch.testing.assert_close(masked_a[:, :5], masked_b[:, :5], atol=1e-6, rtol=0)
    unmasked_a, unmasked_b = model(ids).hidden_states, model(changed).hidden_states
    assert (unmasked_a[:, :5] - unmasked_b[:, :5]).abs().max() > 1e-3


def test_token_classification_loss_matches_hand_computed_cross_entropy(tiny_config):
    tiny_config.labels = LABELS
    model = ForTokenClassification(tiny_config).eval()
    ids = _batch(tiny_config, batch=1, length=4)
    labels = torch.tensor([[-100, 1, -100, 2]])
    output = model(ids, labels=labels)
    log_probabilities = model(ids).logits[0].log_softmax(-1)
    by_hand = -(log_probabilities[1, 1] + log_probabilities[3, 2]) / 2
    assert math.isclose(output.loss.item(), by_hand.item(), rel_tol=1e-6)
    # logits mean (batch, seq, labels) or nothing; the labelled rows have their own name
    assert output.logits is None
    torch.testing.assert_close(output.labelled_logits, model(ids).logits[0, [1, 3]])
    unlabelled = model(ids, labels=torch.full_like(labels, -100))
    assert unlabelled.labelled_logits.shape == (0, 3) and unlabelled.loss.item() == 0.0


def test_sequence_classification_loss_is_cross_entropy(tiny_config):
    tiny_config.labels = LABELS
    model = ForSequenceClassification(tiny_config).eval()
    ids = _batch(tiny_config, batch=3, length=5)
    labels = torch.tensor([0, 2, 1])
    output = model(ids, labels=labels)
    probabilities = output.logits.softmax(-1)
    by_hand = -sum(math.log(probabilities[i, labels[i]].item()) for i in range(3)) / 3
    assert math.isclose(output.loss.item(), by_hand, rel_tol=1e-5)


def test_sparse_mlm_loss_equals_dense_loss(tiny_config):
    model = ForPreTraining(tiny_config).eval()
    ids = _batch(tiny_config, batch=3, length=11)
    mlm_labels = torch.full_like(ids, -100)
    mlm_labels[:, 2::3] = ids[:, 2::3]
    nsp_labels = torch.tensor([0, 1, 1])
    sparse = model(ids, mlm_labels=mlm_labels, nsp_labels=nsp_labels)
    dense_logits = model(ids).mlm_logits
    dense_mlm = F.cross_entropy(dense_logits.flatten(0, 1), mlm_labels.flatten(), ignore_index=-100)
    assert sparse.mlm_logits.shape == (int((mlm_labels != -100).sum()), tiny_config.vocab_size)
    torch.testing.assert_close(sparse.mlm_loss, dense_mlm)
    torch.testing.assert_close(sparse.loss, dense_mlm + F.cross_entropy(sparse.nsp_logits, nsp_labels))


@pytest.mark.parametrize("norm_placement", ["post", "pre"])
@pytest.mark.parametrize("position_encoding", ["learned", "rotary"])
@pytest.mark.parametrize("layout", ["no padding", *LAYOUTS])
def test_last_layer_run_only_where_heads_read_gives_the_full_models_loss_and_gradients(
        tiny_config, norm_placement, position_encoding, layout, monkeypatch):
    """Pretraining runs the last layer only at [CLS] and the masked positions; the loss and every
    gradient must equal those of the whole encoder output gathered at the same positions."""
    use_layout(monkeypatch, layout)
    tiny_config.norm_placement, tiny_config.position_encoding = norm_placement, position_encoding
    model = ForPreTraining(tiny_config).eval()
    ids = _batch(tiny_config, batch=3, length=11, seed=5)
    mask = torch.ones_like(ids)
    if layout != "no padding":
        mask[1, 7:], mask[2, 4:] = 0, 0
    mlm_labels = torch.full_like(ids, -100)
    mlm_labels[:, 1::4] = ids[:, 1::4]
    mlm_labels[mask == 0] = -100
    nsp_labels = torch.tensor([0, 1, 1])
    loss = model(ids * mask, attention_mask=mask, mlm_labels=mlm_labels, nsp_labels=nsp_labels).loss
    loss.backward()
    gradients = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()

    hidden = model.encoder(ids * mask, mask)
    masked = mlm_labels != -100
    logits = model.mlm_head(hidden[masked], model.encoder.embeddings.word_embeddings.weight)
    full = F.cross_entropy(logits, mlm_labels[masked]) + F.cross_entropy(
        model.nsp_head(model.pooler(hidden, mask)), nsp_labels)
    full.backward()
    torch.testing.assert_close(loss, full, atol=1e-6, rtol=1e-5)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(gradients[name], parameter.grad, atol=1e-6, rtol=1e-4, msg=name)
    selected = model.encoder(ids * mask, mask, outputs_at=masked)
    torch.testing.assert_close(selected, hidden[masked], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sequence_classification_with_cls_pooling_matches_the_full_encoder(tiny_config, layout, monkeypatch):
    use_layout(monkeypatch, layout)
    tiny_config.labels = LABELS
    model = ForSequenceClassification(tiny_config).eval()
    ids = _batch(tiny_config, batch=2, length=8, seed=6)
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    by_hand = model.classifier(model.pooler(model.encoder(ids, mask), mask))
    torch.testing.assert_close(model(ids, attention_mask=mask).logits, by_hand, atol=1e-6, rtol=1e-5)


def test_outputs_at_padded_positions_are_refused(tiny_config):
    model = ForPreTraining(tiny_config).eval()
    ids = _batch(tiny_config, batch=2, length=6)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    mlm_labels = torch.full_like(ids, -100)
    mlm_labels[1, 4] = 7  # a label on padding
    with pytest.raises(ValueError, match="padded positions"):
        model(ids, attention_mask=mask, mlm_labels=mlm_labels)


def test_mlm_decoder_is_tied_to_token_embeddings(tiny_config):
    model = ForPreTraining(tiny_config)
    before = model(_batch(tiny_config)).mlm_logits
    with torch.no_grad():
        model.encoder.embeddings.word_embeddings.weight[7] += 1.0
    after = model.eval()(_batch(tiny_config)).mlm_logits
    assert not torch.allclose(before[..., 7], after[..., 7])
    assert not any("decoder" in name for name in model.state_dict())


def test_inputs_beyond_learned_positions_give_a_clear_error(tiny_config):
    model = EncoderModel(tiny_config)
    with pytest.raises(ValueError, match="input has 49 tokens but the model has learned positions for only 48"):
        model(torch.ones(1, 49, dtype=torch.long))


def test_out_of_vocabulary_ids_give_a_clear_error(tiny_config):
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 101\)"):
        EncoderModel(tiny_config)(torch.tensor([[1, 2, 101]]))


def test_classifier_without_labels_is_refused(tiny_config):
    with pytest.raises(ValueError, match="needs config.labels"):
        ForTokenClassification(tiny_config)


def test_dropout_is_active_in_training_only():
    config = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    model = EncoderModel(config)
    ids = torch.randint(1, 50, (2, 6))
    assert not torch.equal(model.train()(ids).hidden_states, model(ids).hidden_states)
    assert torch.equal(model.eval()(ids).hidden_states, model(ids).hidden_states)


HOST_READS = {"__bool__", "item", "tolist", "__int__", "__float__", "__index__", "nonzero", "argwhere",
              "masked_select", "unique"}


class HostReads(TorchFunctionMode):
    """Records every torch call that makes the host wait for a tensor's values — on a GPU, a sync
    that drains its queue: reading a value, or an output whose size depends on values (nonzero,
    indexing with a boolean mask)."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        indices = args[1] if name in ("__getitem__", "__setitem__") else ()
        indices = indices if isinstance(indices, tuple) else (indices,)
        if name in HOST_READS or any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices):
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("model_class, labelled, reads", [
    (EncoderModel, False, 0),
    (ForSequenceClassification, False, 0),
    (ForSequenceClassification, True, 0),
    (ForTokenClassification, False, 0),
    (ForTokenClassification, True, 2),  # the labelled rows and their labels: sizes only the values tell
    (ForPreTraining, True, 3),  # the masked rows, their labels, and which selected rows they are
])
def test_a_gpu_step_reads_nothing_back_but_the_sparse_gathers(tiny_config, monkeypatch, model_class, labelled, reads):
    """On a GPU (simulated: the masked layout, value checks off as without NLU_DEBUG) a training
    step waits for the device only where a head gathers a data-dependent number of rows; input
    checks, padding extents and the [CLS] rows read nothing."""
    monkeypatch.setattr(padding_module, "PACKED_DEVICE_TYPES", frozenset())
    monkeypatch.setattr(padding_module, "reads_values", lambda device: False)
    monkeypatch.setattr(embeddings_module, "reads_values", lambda device: False)
    tiny_config.labels = LABELS
    model = model_class(tiny_config).train()
    ids = _batch(tiny_config, batch=3, length=8)
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3, [1] * 2 + [0] * 6])
    inputs = {"input_ids": ids, "attention_mask": mask}
    if labelled and model_class is ForSequenceClassification:
        inputs["labels"] = torch.tensor([0, 2, 1])
    elif labelled and model_class is ForTokenClassification:
        inputs["labels"] = torch.full_like(ids, -100).masked_fill(mask.bool(), 1)
    elif labelled:
        inputs |= {"mlm_labels": torch.full_like(ids, -100).masked_fill(mask.bool() & (ids % 3 == 0), 5),
                   "nsp_labels": torch.tensor([0, 1, 1])}
    with HostReads() as spy:
        output = model(**inputs)
        loss = output.loss if labelled else (output.hidden_states if model_class is EncoderModel else output.logits).sum()
        loss.backward()
    assert len(spy.calls) == reads, spy.calls


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh runs this)")
@pytest.mark.parametrize("model_class", [ForTokenClassification, ForPreTraining])
def test_on_cuda_the_masked_layout_matches_the_cpu_and_reads_back_only_the_sparse_gathers(tiny_config, model_class):
    """The real GPU path, unpatched: padded batches are masked, not packed; the loss and gradients
    match the CPU's packed computation, and the step reads back only the head's gathers."""
    torch.backends.cuda.matmul.allow_tf32 = False
    tiny_config.labels = LABELS
    cpu_model = model_class(tiny_config).eval()
    gpu_model = model_class(tiny_config).cuda().eval()
    gpu_model.load_state_dict(cpu_model.state_dict())
    ids = _batch(tiny_config, batch=3, length=8)
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3, [1] * 2 + [0] * 6])
    labels = torch.full_like(ids, -100).masked_fill(mask.bool() & (ids % 2 == 0), 1)
    inputs = {"input_ids": ids, "attention_mask": mask}
    inputs |= {"labels": labels} if model_class is ForTokenClassification else {
        "mlm_labels": ids.masked_fill(labels == -100, -100), "nsp_labels": torch.tensor([0, 1, 1])}
    cpu_model(**inputs).loss.backward()
    with HostReads() as spy:
        loss = gpu_model(**{key: value.cuda() for key, value in inputs.items()}).loss
        loss.backward()
    assert len(spy.calls) == (2 if model_class is ForTokenClassification else 3), spy.calls
    assert padding_module.padding_of(mask.cuda(), ids.cuda()).whole.slots is None  # masked, not packed
    for (name, ours), theirs in zip(gpu_model.named_parameters(), cpu_model.parameters()):
        torch.testing.assert_close(ours.grad.cpu(), theirs.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_input_checks_without_reading_values_still_check_shapes(tiny_config):
    """What a GPU forward checks (shapes only) and what a host-side caller can check (values too)."""
    bad = torch.tensor([[1, 2, tiny_config.vocab_size]])
    embeddings_module.check_inputs(tiny_config, bad, values=False)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 101\); got values in \[1, 101\]"):
        embeddings_module.check_inputs(tiny_config, bad)
    with pytest.raises(ValueError, match=r"token_type_ids shape \(1, 2\) != input_ids shape \(1, 3\)"):
        embeddings_module.check_inputs(tiny_config, bad, torch.zeros(1, 2, dtype=torch.long), values=False)
