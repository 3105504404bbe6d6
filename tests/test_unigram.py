"""A SentencePiece-style Unigram tokenizer with XLM-R's special tokens, through every NER stage.

The tokenizer is trained here (tokenizers' UnigramTrainer on the shipped WNUT-16 tweets) with
XLM-R's conventions: Metaspace pre-tokenizer, ``<s> </s> <pad> <unk> <mask>`` with ``<pad>`` id 1,
``<s> $A </s>``. Nothing is downloaded; the real 250k-piece tokenizer is tested in test_quantized.
"""

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, BertConfig, BertForTokenClassification, BertModel, PreTrainedTokenizerFast

import nlu
from nlu.data.ner import (IGNORE_INDEX, NerSentence, _owners, _window_spans, encode_ner, merge_window_predictions,
                          read_ner_file)
from nlu.errors import CheckpointError, ConfigError
from nlu.interop import to_transformers
from nlu.model import ForTokenClassification
from nlu.settings import load_settings
from nlu.tasks import ner
from nlu.tasks.finetune import initial_model, pad_batch
from nlu.tokenizer import load_tokenizer, save_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WNUT = ROOT / "data" / "ner" / "wnut16"
XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # the trainer numbers them 0..3 in this order, as XLM-R
SOFT_HYPHEN = "\u00ad"  # deleted by the normaliser (as XLM-R's does with some format characters): a word of no pieces


def unigram_tokenizer(texts: list[str], vocab_size: int = 800) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(SOFT_HYPHEN, ""),
                                               normalizers.Replace(Regex(" {2,}"), " ")])
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=XLMR_SPECIALS, unk_token="<unk>",
                                      show_progress=False)
    backend.train_from_iterator(texts, trainer)
    backend.add_special_tokens(["<mask>"])  # last, as XLM-R's 250001
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", cls_token="<s>", eos_token="</s>",
                                   sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   model_max_length=512)


@pytest.fixture(scope="module")
def train_sentences():
    return read_ner_file(WNUT / "train.conll")


@pytest.fixture(scope="module")
def tokenizer(train_sentences, tmp_path_factory):
    """Trained, saved with nlu and loaded back, so every test sees what a checkpoint folder gives."""
    folder = tmp_path_factory.mktemp("unigram")
    save_tokenizer(unigram_tokenizer([" ".join(s.words) for s in train_sentences]), folder)
    return load_tokenizer(folder)


def test_saved_tokenizer_keeps_xlmr_specials(tokenizer):
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == XLMR_SPECIALS
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id) == (0, 1, 2, 3)
    assert tokenizer.mask_token_id == len(tokenizer) - 1 == 800
    assert tokenizer("London calling").input_ids[0] == 0 and tokenizer("London calling").input_ids[-1] == 2


def test_saved_folder_loads_in_transformers_4_and_5_without_a_false_warning(tmp_path):
    """A 100k+ piece vocabulary (XLM-R's is 250k) saved in an nlu checkpoint folder: the class is
    named so that transformers 4 resolves it too, and transformers 5's guess that such a folder may
    hold a broken Mistral tokenizer ("will lead to incorrect tokenization") is not shown."""
    pieces = [(token, 0.0) for token in XLMR_SPECIALS] + [(f"▁w{i}", -float(i % 97)) for i in range(100_000)]
    backend = Tokenizer(models.Unigram(pieces, unk_id=3))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    big = PreTrainedTokenizerFast(tokenizer_object=backend, cls_token="<s>", sep_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>")
    save_tokenizer(big, tmp_path)
    (tmp_path / "config.json").write_text('{"architecture": "ForTokenClassification"}')  # nlu's, no model_type
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("transformers").addHandler(handler)
    try:
        loaded = load_tokenizer(tmp_path)
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert len(loaded) == 100_004 and loaded("w7 w99").input_ids == [11, 103]
    assert [r.getMessage() for r in records if "mistral" in r.getMessage().lower()] == []


def test_first_sub_token_alignment_keeps_every_word(tokenizer):
    words = ["London", ",", SOFT_HYPHEN, "running", "Köln"]
    tags = ["B-geo-loc", "O", "O", "O", "B-geo-loc"]
    pieces = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    # what makes this tokenizer different from WordPiece: a word can start with a bare "▁" piece,
    # and a word the normaliser deletes has no piece at all
    assert tokenizer.convert_ids_to_tokens(pieces.input_ids)[:2] == ["▁", "London"]
    assert 2 not in pieces.word_ids()
    labels = {"O": 0, "B-geo-loc": 1, "I-geo-loc": 2}
    (window,) = encode_ner([NerSentence(words, tags, "t", 1)], tokenizer, labels, max_length=32, stride=4)
    assert window.input_ids[0] == tokenizer.cls_token_id == 0 and window.input_ids[-1] == tokenizer.sep_token_id == 2
    first = {word: position for position, word in enumerate(window.word_ids) if word is not None}
    assert sorted(first) == [0, 1, 2, 3, 4]  # every word owns one first position, the empty one included
    assert [window.labels[first[w]] for w in range(5)] == [1, 0, 0, 0, 1]
    assert tokenizer.convert_ids_to_tokens(window.input_ids[first[0]]) == "▁"  # the label sits on the bare "▁" ...
    assert window.labels[first[0] + 1] == IGNORE_INDEX  # ... and "London" is a continuation, as in transformers
    assert window.input_ids[first[2]] == tokenizer.unk_token_id == 3  # the empty word holds <unk>, not nothing
    labelled = [label for label in window.labels if label != IGNORE_INDEX]
    assert len(labelled) == len(words)
    (all_pieces,) = encode_ner([NerSentence(words, tags, "t", 1)], tokenizer, labels, 32, 4, label_all_subtokens=True)
    assert all_pieces.labels[first[0] + 1] == 2  # B-geo-loc's continuation is I-geo-loc


def test_windows_over_a_long_sentence_lose_no_word_and_no_label(tokenizer, train_sentences):
    chosen = train_sentences[:40]
    words = [w for s in chosen for w in s.words] + [SOFT_HYPHEN]
    tags = [t for s in chosen for t in s.tags] + ["O"]
    labels = {tag: i for i, tag in enumerate(sorted(set(tags) | {t.replace("B-", "I-") for t in tags}))}
    sentence = NerSentence(words, tags, "long", 1)
    windows = encode_ner([sentence], tokenizer, labels, max_length=24, stride=6)
    assert len(words) > 500 and len(windows) > 40
    assert all(len(w.input_ids) <= 24 and w.input_ids[0] == 0 and w.input_ids[-1] == 2 for w in windows)
    responsible = sorted(word for w in windows for word in w.responsible_words)
    assert responsible == list(range(len(words)))  # each word predicted from exactly one window
    # feeding the windows' own labels back as predictions returns every word's gold label
    predictions = [[0 if label == IGNORE_INDEX else label for label in w.labels] for w in windows]
    (merged,) = merge_window_predictions(windows, predictions, [len(words)])
    assert merged == [labels[tag] for tag in tags]


def test_pad_batch_pads_with_the_tokenizers_pad_id(tokenizer):
    long, short = (dict(tokenizer(text, return_token_type_ids=True)) for text in ("a b c d", "a"))
    batch = pad_batch([long, short], tokenizer.pad_token_id)
    padding = len(long["input_ids"]) - len(short["input_ids"])
    assert padding > 0 and batch["input_ids"][1].tolist() == short["input_ids"] + [1] * padding
    assert batch["attention_mask"][1].tolist() == [1] * len(short["input_ids"]) + [0] * padding


def test_load_tokenizer_refuses_a_folder_without_its_vocabulary(tokenizer, tmp_path, wordpiece_tokenizer):
    # issue #19 item 2: transformers builds a specials-only tokenizer from tokenizer_config.json alone
    for name, source in (("unigram", tokenizer), ("wordpiece", wordpiece_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                                                    "[MASK]", "london"]))):
        folder = tmp_path / name
        save_tokenizer(source, folder)
        for vocabulary in ("tokenizer.json", "vocab.txt"):
            (folder / vocabulary).unlink(missing_ok=True)
        assert (folder / "tokenizer_config.json").is_file()
        with pytest.raises(CheckpointError, match=f"{folder}: tokenizer.json is missing"):
            load_tokenizer(folder)
    specials_only = wordpiece_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    save_tokenizer(specials_only, tmp_path / "specials")
    with pytest.raises(CheckpointError, match="holds only its 5 special tokens"):
        load_tokenizer(tmp_path / "specials")


def tiny_bert(tokenizer, folder: Path, vocab_size: int | None = None) -> Path:
    """A random transformers BertModel of this vocabulary, saved with the tokenizer: an ``init=`` folder."""
    config = BertConfig(vocab_size=vocab_size or len(tokenizer), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_model_whose_embedding_is_smaller_than_the_tokenizer_is_refused(tokenizer, tmp_path):
    init = tiny_bert(tokenizer, tmp_path / "small", vocab_size=500)
    settings = load_settings(ROOT / "tasks" / "wnut16_ner.yaml", [f"init={init}"], task="ner")
    with pytest.raises(ConfigError, match="has 801 tokens but the model in .* embeds only 500"):
        initial_model(settings, ForTokenClassification, ["O", "B-x"], None)


@pytest.mark.slow
def test_fine_tune_predict_and_export_through_init(tokenizer, train_sentences, tmp_path):
    init = tiny_bert(tokenizer, tmp_path / "init")
    files = {}
    for split, sentences in (("train", train_sentences[:100]), ("dev", read_ner_file(WNUT / "dev.conll")[:30]),
                             ("test", read_ner_file(WNUT / "test.conll")[:30])):
        files[split] = tmp_path / f"{split}.conll"
        files[split].write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(s.words, s.tags)) + "\n"
                                        for s in sentences))
    overrides = [f"data.{split}={path}" for split, path in files.items()] + [
        f"init={init}", "data.max_length=24", "data.stride=6", f"training.output_dir={tmp_path / 'run'}",
        "training.max_steps=6", "training.eval_every=6", "training.learning_rate=3e-3", "training.batch_size=16",
        "training.cpu=true", "training.early_stopping_patience=0", "training.save_every=100"]
    summary = ner.run(load_settings(ROOT / "tasks" / "wnut16_ner.yaml", overrides, task="ner"))
    assert summary["steps"] == 6 and summary["train_windows"] > 100  # max_length 24 windows the tweets
    best = tmp_path / "run" / "best"
    assert load_tokenizer(best).pad_token_id == 1 and ForTokenClassification.from_pretrained(best).config.pad_token_id == 1

    tagger = nlu.load(best)
    text = "Obama visited London and Köln with Google people , today"
    tagged = tagger.predict(text)
    assert tagged.words == text.split() and len(tagged.tags) == len(tagged.words)

    model = ForTokenClassification.from_pretrained(best).eval()
    exported = to_transformers(model, tmp_path / "hf", tokenizer=load_tokenizer(best))
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert reloaded.pad_token_id == 1 and reloaded.cls_token == "<s>"
    theirs = BertForTokenClassification.from_pretrained(tmp_path / "hf").eval()
    assert theirs.config.pad_token_id == 1
    batch = reloaded(["Obama visited London", "Köln , today"], padding=True, return_tensors="pt")
    assert batch["input_ids"][1, -1] == 1  # the shorter sentence is padded with <pad>, id 1
    with torch.no_grad():
        ours = model(batch["input_ids"], batch["attention_mask"]).logits
        hf = theirs(**batch).logits
        direct = exported(**batch).logits
    real = batch["attention_mask"].bool()
    np.testing.assert_allclose(ours[real].numpy(), hf[real].numpy(), atol=1e-5)
    np.testing.assert_allclose(direct[real].numpy(), hf[real].numpy(), atol=1e-6)


def test_window_owners_are_found_in_linear_time():
    """A 100,000-word document: each word's owner is looked for among its own few windows only
    (the earlier scan over every window for every word took about a minute here)."""
    counts = [1 + (word * 7) % 3 for word in range(100_000)]
    spans = _window_spans(counts, budget=126, stride=32)
    started = time.perf_counter()
    owners = _owners(spans, counts)
    assert time.perf_counter() - started < 3.0
    assert all(spans[k][0] <= word < spans[k][1] for word, k in enumerate(owners))
    assert owners == sorted(owners) and owners[0] == 0 and owners[-1] == len(spans) - 1
