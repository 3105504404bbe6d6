"""Position encodings: learned (BERT), sinusoidal and rotary."""

import math

import pytest
import torch

from nlu.config import EncoderConfig
from nlu.errors import ConfigError
from nlu.interop import to_transformers
from nlu.model import EncoderModel, ForTokenClassification, load_model
from nlu.model.positions import rotary_angles, rotate, sinusoidal_table

ENCODINGS = ["learned", "sinusoidal", "rotary"]


def config(encoding: str, **options) -> EncoderConfig:
    return EncoderConfig(vocab_size=61, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                         max_position_embeddings=12, hidden_dropout=0.0, attention_dropout=0.0,
                         position_encoding=encoding, **options)


def test_sinusoidal_values_follow_the_formula():
    table = sinusoidal_table(7, 6)
    for position in range(7):
        for i in range(3):
            angle = position / 10000 ** (2 * i / 6)
            assert table[position, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[position, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoidal_table(3, 5).shape == (3, 5)


def test_rotary_scores_depend_only_on_the_offset():
    generator = torch.Generator().manual_seed(0)
    query, key = torch.randn(8, generator=generator), torch.randn(8, generator=generator)
    cos, sin = rotary_angles(40, 8, theta=10000.0)

    def score(m: int, n: int) -> float:
        return float(rotate(query, cos[m], sin[m]) @ rotate(key, cos[n], sin[n]))

    for m, n in [(3, 1), (10, 2), (0, 5)]:
        for shift in (1, 7, 20):
            assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-4)
    assert abs(score(3, 1) - score(3, 2)) > 1e-3  # but it does depend on the offset
    assert torch.allclose(rotate(query, cos[0], sin[0]), query)  # position 0 is the identity


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_padding_invariance_for_each_encoding(encoding):
    model = EncoderModel(config(encoding)).eval()
    ids = torch.randint(1, 61, (1, 6))
    short = model(ids, attention_mask=torch.ones_like(ids)).hidden_states
    padded = model(torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1),
                   attention_mask=torch.tensor([[1] * 6 + [0] * 4])).hidden_states
    torch.testing.assert_close(padded[:, :6], short, atol=1e-5, rtol=0)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_save_and_load_round_trip_for_each_encoding(encoding, tmp_path):
    model = ForTokenClassification(config(encoding, labels=["O", "B-X", "I-X"])).eval()
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path).eval()
    assert loaded.config.position_encoding == encoding
    ids = torch.randint(1, 61, (2, 9))
    assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert ("encoder.embeddings.position_embeddings.weight" in loaded.state_dict()) == (encoding == "learned")


@pytest.mark.parametrize("encoding", ["sinusoidal", "rotary"])
def test_fixed_encodings_accept_inputs_longer_than_trained(encoding):
    model = EncoderModel(config(encoding)).eval()
    assert model(torch.randint(1, 61, (1, 30))).hidden_states.shape == (1, 30, 16)


def test_learned_positions_refuse_longer_inputs_clearly():
    with pytest.raises(ValueError, match="learned positions for only 12"):
        EncoderModel(config("learned"))(torch.randint(1, 61, (1, 13)))


def test_rotary_changes_the_function_and_order_matters():
    """Without any position signal a transformer is permutation-equivariant; rotary breaks that.
    (Large initial weights, so that attention is far from uniform.)"""
    model = EncoderModel(config("rotary", initializer_range=0.5)).eval()
    ids = torch.randint(1, 61, (1, 6))
    permutation = torch.tensor([5, 4, 3, 2, 1, 0])
    forward = model(ids).hidden_states[0]
    backward = model(ids[:, permutation]).hidden_states[0][permutation]
    assert (forward - backward).abs().max() > 1e-3


@pytest.mark.parametrize("encoding", ["sinusoidal", "rotary"])
def test_export_refuses_what_bert_cannot_express(encoding, tmp_path):
    with pytest.raises(ConfigError, match="learned absolute positions only"):
        to_transformers(EncoderModel(config(encoding)), tmp_path)


def test_bad_position_options_are_config_errors():
    with pytest.raises(ConfigError, match="position_encoding must be one of learned, sinusoidal, rotary"):
        config("alibi")
    with pytest.raises(ConfigError, match="head size 3 must be even"):
        EncoderConfig(hidden_size=6, num_heads=2, position_encoding="rotary")


# --- Long inputs at fine-tuning and prediction time ------------------------------------------

WORDS = [f"w{i}" for i in range(40)]
LABELS = ["O", "B-X", "I-X"]


@pytest.fixture
def word_tokenizer(wordpiece_tokenizer):
    """One sub-token per word, so a sentence of n words is n + 2 model positions."""
    return wordpiece_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])


def long_sentence(words: int = 30):
    from nlu.data.ner import NerSentence

    return NerSentence(WORDS[:words], ["O"] * words, "<test>", 1)


@pytest.mark.parametrize("encoding", ["sinusoidal", "rotary"])
def test_ner_prediction_reads_long_sentences_whole_with_fixed_positions(encoding, word_tokenizer):
    """32 positions with a model that has max_position_embeddings=12: one window, no warning, and
    the tags are those of the model run on the whole sentence at once."""
    import warnings

    from nlu.tasks.ner import predict_tags

    model = ForTokenClassification(config(encoding, labels=LABELS)).eval()
    sentence = long_sentence(30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tags, windowed = predict_tags(model, word_tokenizer, [sentence], max_length=64, stride=4, batch_size=8)
    assert windowed == 0
    ids = torch.tensor([[word_tokenizer.cls_token_id, *word_tokenizer.convert_tokens_to_ids(sentence.words),
                         word_tokenizer.sep_token_id]])
    with torch.no_grad():
        whole = model(ids).logits[0, 1:-1].argmax(-1).tolist()
    assert tags == [[LABELS[i] for i in whole]]
    # Asked for short inputs, the same model still windows.
    _, windowed = predict_tags(model, word_tokenizer, [sentence], max_length=12, stride=4, batch_size=8)
    assert windowed > 0


def test_ner_prediction_with_learned_positions_windows_and_says_why(word_tokenizer):
    from nlu.tasks.ner import predict_tags

    model = ForTokenClassification(config("learned", labels=LABELS)).eval()
    with pytest.warns(UserWarning, match="max_length=64 exceeds the model's 12 learned positions"):
        tags, windowed = predict_tags(model, word_tokenizer, [long_sentence(30)], max_length=64, stride=4,
                                      batch_size=8)
    assert windowed > 0 and len(tags[0]) == 30


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_ner_fine_tuning_uses_max_length_beyond_the_position_table(encoding, word_tokenizer, tmp_path):
    """A model from init with max_position_embeddings=12 fine-tuned at max_length=64: sinusoidal and
    rotary models train and are tested on whole sentences; learned ones fall back to windows of 12."""
    import json
    import warnings

    from nlu.settings import load_settings
    from nlu.tasks import ner
    from nlu.tokenizer import save_tokenizer

    init = tmp_path / "init"
    EncoderModel(config(encoding)).save_pretrained(init)
    save_tokenizer(word_tokenizer, init)
    rows = []
    for length in (30, 5, 25):
        rows.append("".join(f"{word}\t{'B-X' if i == 3 else 'O'}\n" for i, word in enumerate(WORDS[:length])) + "\n")
    (tmp_path / "data.conll").write_text("".join(rows))
    data = tmp_path / "data.conll"
    settings = load_settings(None, [
        "task=ner", f"init={init}", f"data.train={data}", f"data.dev={data}", f"data.test={data}",
        "data.max_length=64", "data.stride=4", "training.max_steps=2", "training.batch_size=2",
        f"training.output_dir={tmp_path / 'run'}", "training.cpu=true",
    ])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = ner.run(settings)
    capped = [w for w in caught if "learned positions" in str(w.message)]
    metrics = json.loads((tmp_path / "run" / "test" / "metrics.json").read_text())
    if encoding == "learned":
        assert capped and summary["train_windows"] > 3
        assert metrics["max_length"] == 12 and metrics["windowed_sentences"] > 0  # extra windows, in fact
    else:
        assert not capped and summary["train_windows"] == 3
        assert metrics["max_length"] == 64 and metrics["windowed_sentences"] == 0


def test_sinusoidal_positions_start_level_with_the_token_embeddings():
    """Added at unit amplitude the sinusoids would be ~35x the token embeddings (std 0.02) and drown
    them after the LayerNorm; they are scaled to the RMS of a freshly initialised learned table."""
    embeddings = EncoderModel(config("sinusoidal")).encoder.embeddings.eval()
    with torch.no_grad():
        embeddings.word_embeddings.weight.zero_()
        embeddings.token_type_embeddings.weight.zero_()
    embeddings.norm = torch.nn.Identity()  # what is added before the LayerNorm: the positions alone
    with torch.no_grad():
        positions = embeddings(torch.randint(1, 61, (1, 12)))[0]
    torch.testing.assert_close(positions, sinusoidal_table(12, 16) * 0.02 * math.sqrt(2))
    learned = EncoderModel(config("learned")).encoder.embeddings.position_embeddings
    assert positions.pow(2).mean().sqrt().item() == pytest.approx(0.02, rel=0.01)
    assert learned.weight.pow(2).mean().sqrt().item() == pytest.approx(0.02, rel=0.15)
