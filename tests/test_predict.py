"""nlu.load(...).predict: the word rule, entities against gold spans, inputs of every shape, loading paths.

The models here have random weights: what is tested (offsets, windows, parity of two paths) holds
for any weights, and random ones predict many entities of every type, which is what the checks need.
"""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import nlu
from nlu import cli, predict, sources
from nlu.config import EncoderConfig
from nlu.data.ner import NerSentence, label_list, read_ner_file
from nlu.errors import CheckpointError, DataError
from nlu.evaluation.confusion import entity_spans
from nlu.model import ForSequenceClassification, ForTokenClassification
from nlu.data.words import split_words
from nlu.predict import entities_from_tags, input_lengths, text_of_words
from nlu.tasks.finetune import save_input_settings
from nlu.tasks.ner import predict_tags
from nlu.tokenizer import load_tokenizer, save_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WNUT_TEST = ROOT / "data" / "ner" / "wnut16" / "test.conll"
TOKENIZER = ROOT / "tests" / "data" / "news120_wordpiece1000"


def save_tiny_model(model_class, directory: Path, labels: list[str], initializer_range: float = 0.02,
                    **input_settings) -> Path:
    """A random 2-layer model with the shipped test tokenizer, saved as fine-tuning saves one
    (a classifier needs larger weights than BERT's 0.02 for its outputs to vary between texts)."""
    tokenizer = load_tokenizer(TOKENIZER)
    config = EncoderConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                           max_position_embeddings=64, hidden_dropout=0.0, attention_dropout=0.0, labels=labels,
                           initializer_range=initializer_range)
    model_class(config).save_pretrained(directory)
    save_tokenizer(tokenizer, directory)
    save_input_settings(directory, **input_settings)
    return directory


@pytest.fixture(scope="module")
def wnut_test() -> list[NerSentence]:
    return read_ner_file(WNUT_TEST)


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory, wnut_test) -> Path:
    torch.manual_seed(0)
    return save_tiny_model(ForTokenClassification, tmp_path_factory.mktemp("tagger"), label_list(wnut_test),
                           max_length=32, stride=8)


def bert_words(tokenizer, text: str) -> list[tuple[int, int]]:
    """The words BERT's tokenizer sees in ``text`` (normaliser + pre-tokeniser), as character spans."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans: dict[int, tuple[int, int]] = {}
    for word, (start, end) in zip(encoding.word_ids(), encoding["offset_mapping"]):
        first, last = spans.get(word, (start, end))
        spans[word] = (min(first, start), max(last, end))
    return [spans[word] for word in sorted(spans)]


# ---------------------------------------------------------------------------------------------
# The word rule
# ---------------------------------------------------------------------------------------------


def test_words_split_punctuation_and_keep_offsets():
    text = "Obama visited London, then Berlin.  Don't\u00a0stop-now ​😀 中文!"
    spans = split_words(text)
    assert [text[start:end] for start, end in spans] == [
        "Obama", "visited", "London", ",", "then", "Berlin", ".", "Don", "'", "t", "stop", "-", "now", "😀",
        "中", "文", "!"]
    assert spans[2] == (14, 20)  # the zero-width space (a format character) belongs to no word


def test_the_rule_is_bert_pre_tokenization_on_the_test_split_and_on_random_text(wnut_test):
    tokenizer = load_tokenizer(TOKENIZER)
    texts = [" ".join(sentence.words) for sentence in wnut_test]
    alphabet = list("abcXYZ019 '’-.,!?@#$_()[]{}\"\t\n\r") + [
        "\u00a0", "\u200b", "\u2028", "\x85", "\x1c", "\x0b", "é", "中", "😀", "€", "\ufffd", "\u3000", "ß", "\x00",
        "\u00ad", "\u0378", "\ue000", "\u2003", "\u202f",
        # where Python's Unicode tables and the tokenizer's disagree: punctuation newer than one of them,
        # format characters to one only, an ideograph block (CJK Extension E) the tokenizer does not space
        "\u061d", "\u2e52", "\u2e43", "\u0890", "\U00013430", "\u166d", "\U000111c9", "\U0002b820"]
    rng = random.Random(7)
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(1500)]
    mismatches = [text for text in texts if split_words(text) != bert_words(tokenizer, text)]
    assert mismatches == []


# ---------------------------------------------------------------------------------------------
# Entities against gold spans
# ---------------------------------------------------------------------------------------------


def test_every_gold_entity_of_the_test_split_slices_back_to_its_words(wnut_test):
    checked = 0
    for sentence in wnut_test:
        text, offsets = text_of_words(sentence.words, sentence.source, sentence.line)
        entities = entities_from_tags(text, offsets, sentence.tags, [1.0] * len(sentence.words))
        gold = entity_spans(sentence.tags, mode="strict")
        assert [(e.type, e.word_start, e.word_end) for e in entities] == [(s.type, s.start, s.end) for s in gold]
        for entity in entities:
            words = sentence.words[entity.word_start:entity.word_end]
            assert entity.text == text[entity.start:entity.end] == " ".join(words)
            assert sentence.tags[entity.word_start] == f"B-{entity.type}"
            assert all(tag == f"I-{entity.type}" for tag in sentence.tags[entity.word_start + 1:entity.word_end])
            checked += 1
    assert checked == 174  # every entity of the shipped test split


def test_random_tag_sequences_decode_to_consistent_entities():
    """Hundreds of random IOB sequences, valid or not: each entity slices back to its words, its
    score is the mean of its words' scores, and re-encoding the entities gives the tags back with
    each I-X that does not continue an X read as B-X (as transformers' pipeline groups them)."""
    rng = random.Random(0)
    tags_pool = ["O", "B-PER", "I-PER", "B-geo-loc", "I-geo-loc"]
    for _ in range(500):
        words = ["".join(rng.choice("ab,.é中") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(0, 12))]
        tags = [rng.choice(tags_pool) for _ in words]
        scores = [rng.random() for _ in words]
        text, offsets = text_of_words(words, "<random>", 1)
        entities = entities_from_tags(text, offsets, tags, scores)
        rebuilt = ["O"] * len(words)
        for entity in entities:
            assert entity.text == text[entity.start:entity.end] == " ".join(words[entity.word_start:entity.word_end])
            assert entity.score == pytest.approx(np.mean(scores[entity.word_start:entity.word_end]))
            rebuilt[entity.word_start:entity.word_end] = [f"B-{entity.type}"] + [f"I-{entity.type}"] * (
                entity.word_end - entity.word_start - 1)
        expected = [f"B-{tag[2:]}" if tag.startswith("I-") and (i == 0 or tags[i - 1][2:] != tag[2:]) else tag
                    for i, tag in enumerate(tags)]
        assert rebuilt == expected, (tags, entities)


# ---------------------------------------------------------------------------------------------
# The predictor
# ---------------------------------------------------------------------------------------------


def test_predict_gives_entities_with_offsets_into_the_original_text(tagger_dir):
    tagger = nlu.load(tagger_dir)
    assert isinstance(tagger, predict.Tagger) and tagger.device.type == "cpu" and tagger.precision.name == "no"
    text = "Obama visited London, then Berlin.\tDon't stop-now!"
    result = tagger.predict(text)
    assert result.words == [text[start:end] for start, end in result.offsets]
    assert len(result.tags) == len(result.words) == 14
    for entity in result.entities:
        assert entity.text == text[entity.start:entity.end]
        assert 0 < entity.score <= 1
    assert result.entities, "a random tagger predicts some entities"


def assert_same_predictions(ours: list, theirs: list) -> None:
    """Equal words, tags and entity spans; scores equal up to float rounding (batches pad differently)."""
    assert [(r.text, r.words, r.tags) for r in ours] == [(r.text, r.words, r.tags) for r in theirs]
    for a, b in zip(ours, theirs):
        assert [(e.type, e.start, e.end) for e in a.entities] == [(e.type, e.start, e.end) for e in b.entities]
        np.testing.assert_allclose([e.score for e in a.entities], [e.score for e in b.entities], atol=1e-5)


def test_inputs_of_every_shape_give_the_same_predictions(tagger_dir):
    tagger = nlu.load(tagger_dir)
    texts = ["Obama visited London , then Berlin .", "", "I love New York"]
    many = tagger.predict(texts)
    assert [r.text for r in many] == texts and many[1].words == [] and many[1].entities == []
    assert_same_predictions([tagger.predict(texts[0])], many[:1])
    words = [text.split() for text in texts]
    assert_same_predictions(tagger.predict(words), many)
    assert_same_predictions([tagger.predict(words[2], is_split_into_words=True)], many[2:])
    assert tagger.predict([]) == [] and tagger.predict([], is_split_into_words=True) == []
    with pytest.raises(DataError, match=r"<input>:1: word 1 is 5: pre-split words must be non-empty strings"):
        tagger.predict(["John", 5], is_split_into_words=True)
    with pytest.raises(DataError, match=r"<input>:2: 5 is neither a text nor a list of words"):
        tagger.predict(["John", 5])


def test_predictions_equal_predict_tags_and_cover_every_word_of_long_texts(tagger_dir, wnut_test):
    tagger = nlu.load(tagger_dir)
    sentences = wnut_test[:60] + [NerSentence([w for s in wnut_test[:12] for w in s.words], [], "long", 1)]
    assert len(sentences[-1].words) > 150  # far beyond max_length=32 sub-tokens
    expected, windowed = predict_tags(tagger.model, tagger.tokenizer, sentences, 32, 8, 16)
    assert windowed > 10
    results = tagger.predict([s.words for s in sentences])
    assert [r.tags for r in results] == expected


def test_max_length_alone_gets_a_stride_that_fits(tagger_dir):
    """Today `--max-length 8` fails on this model (fine-tuned with stride 8, which needs max_length > 10);
    the stride now follows: kept where it fits, else half the window."""
    model, tokenizer = ForTokenClassification.from_pretrained(tagger_dir), load_tokenizer(tagger_dir)
    assert input_lengths(tagger_dir, model, tokenizer, None, None) == (32, 8)
    assert input_lengths(tagger_dir, model, tokenizer, 16, None) == (16, 8)
    assert input_lengths(tagger_dir, model, tokenizer, 8, None) == (8, 3)
    assert input_lengths(tagger_dir, model, tokenizer, 64, None) == (64, 8)
    with pytest.warns(UserWarning, match="exceeds the model's 64 learned positions"):
        assert input_lengths(tagger_dir, model, tokenizer, 500, None) == (64, 8)
    short = nlu.load(tagger_dir, max_length=8)
    assert (short.max_length, short.stride) == (8, 3)
    assert len(short.predict("a b c d e f g h i j k l m n o p q r s t").tags) == 20


def test_a_run_folder_loads_its_best_model_else_its_last(tagger_dir, tmp_path):
    import shutil

    shutil.copytree(tagger_dir, tmp_path / "run" / "model")
    assert nlu.load(tmp_path / "run").directory == tmp_path / "run" / "model"
    shutil.copytree(tagger_dir, tmp_path / "run" / "best")
    assert nlu.load(tmp_path / "run").directory == tmp_path / "run" / "best"


def test_hub_ids_go_through_the_hub_and_fail_in_one_line(tagger_dir, tmp_path, monkeypatch, request):
    from nlu.export import export

    exported = export(tagger_dir, tmp_path / "exported")
    asked = []
    monkeypatch.setattr(sources, "snapshot_download", lambda repo, **_: asked.append(repo) or str(exported))
    text = "Obama visited London"
    assert_same_predictions([nlu.load("someone/tiny-ner").predict(text)], [nlu.load(tagger_dir).predict(text)])
    assert asked == ["someone/tiny-ner"]

    request.getfixturevalue("offline_hub")
    with pytest.raises(CheckpointError, match=r"^someone/absent: no such local folder, and the Hugging Face hub "
                                              r"cannot provide it \(OSError: We couldn't connect"):
        nlu.load("someone/absent")
    with pytest.raises(CheckpointError, match="no such model folder or run folder"):
        nlu.load(str(tmp_path / "missing" / "deeper" / "model"))
    # A mistyped run folder in a folder that exists is a local path, not a hub id to ask for.
    (tmp_path / "runs" / "ner_de_pretrained").mkdir(parents=True)
    with pytest.raises(CheckpointError, match=r"^\S+/runs/ner_de_pretraind: no such model folder or run folder "
                                              r"\(did you mean 'ner_de_pretrained'\?\)$"):
        nlu.load(str(tmp_path / "runs" / "ner_de_pretraind"))


def test_models_without_a_task_head_are_refused(tmp_path, tiny_config):
    from nlu.model import EncoderModel

    EncoderModel(tiny_config).save_pretrained(tmp_path)
    save_tokenizer(load_tokenizer(TOKENIZER), tmp_path)
    with pytest.raises(CheckpointError, match=r"holds a model without a task head \(EncoderModel\)"):
        nlu.load(tmp_path)


def test_classifier_applies_the_saved_logit_adjustment(tmp_path):
    torch.manual_seed(1)
    directory = save_tiny_model(ForSequenceClassification, tmp_path, ["fresh", "rotten", "plot"], 0.5, max_length=32)
    texts = ["a gorgeous, witty and moving film", "a young woman leaves her village", "so so"]
    plain = nlu.load(directory).predict(texts)
    (directory / "logit_adjustment.json").write_text(json.dumps({"subtract": [5.0, 0.0, 0.0]}))
    adjusted = nlu.load(directory).predict(texts)
    for before, after in zip(plain, adjusted):
        p = np.array(list(before.probabilities.values()))
        expected = np.exp(np.log(p) - [5.0, 0, 0]) / np.exp(np.log(p) - [5.0, 0, 0]).sum()
        np.testing.assert_allclose(list(after.probabilities.values()), expected, atol=1e-5)
        assert after.label == max(after.probabilities, key=after.probabilities.get) != "fresh"
    single = nlu.load(directory).predict(texts[0])
    assert single.label == adjusted[0].label and single.score == pytest.approx(adjusted[0].score, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# The predict command
# ---------------------------------------------------------------------------------------------


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_entities_agree_with_the_tags_it_prints(tagger_dir, wnut_test, tmp_path, capsys):
    """The old command printed each entity with one word too many (an exclusive end read as inclusive)."""
    lines = [" ".join(sentence.words) for sentence in wnut_test[:40]]
    (tmp_path / "in.txt").write_text("\n".join(lines[:20]) + "\n\n" + "\n".join(lines[20:]) + "\n")
    status, out, err = run_cli(capsys, "predict", "ner", "--model", str(tagger_dir), "--file", str(tmp_path / "in.txt"))
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in records] == [*range(1, 21), *range(22, 42)]
    assert "1 blank line(s) skipped" in err
    found = 0
    for record, text in zip(records, lines):
        offsets = split_words(text)
        assert record["words"] == [text[start:end] for start, end in offsets]
        spans = entity_spans(record["tags"], mode="default")
        assert [e["type"] for e in record["entities"]] == [span.type for span in spans]
        for entity, span in zip(record["entities"], spans):
            assert (entity["start"], entity["end"]) == (offsets[span.start][0], offsets[span.end - 1][1])
            assert entity["text"] == text[entity["start"]:entity["end"]]
            found += 1
    assert found > 20


def test_cli_classify_prints_line_numbers_not_the_texts(tmp_path, capsys):
    torch.manual_seed(1)
    directory = save_tiny_model(ForSequenceClassification, tmp_path, ["fresh", "rotten", "plot"], 0.5, max_length=16)
    long_text = "a gorgeous , witty and moving film " * 10
    status, out, err = run_cli(capsys, "predict", "classify", "--model", str(directory), "--text", long_text, "so so")
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [sorted(record) for record in records] == [["label", "line", "probabilities", "score"]] * 2
    assert [record["line"] for record in records] == [1, 2] and "gorgeous" not in out
    assert err == "note: 1 text(s) longer than max_length=16 sub-tokens were classified from their first 16\n"


def test_cli_refuses_a_model_of_the_other_task_and_bad_files(tagger_dir, tmp_path, capsys):
    status, _, err = run_cli(capsys, "predict", "classify", "--model", str(tagger_dir), "--text", "hello")
    assert status == 2 and err == (f"nlu: error: {tagger_dir} holds an NER (token classification) model; use "
                                   f"`nlu predict ner`\n")
    (tmp_path / "nul.txt").write_bytes(b"fine\nbad\x00line\n")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    for path, message in ((tmp_path / "missing.txt", "file not found"), (tmp_path, "is a directory"),
                          (tmp_path / "nul.txt", ":2: column 4: a NUL byte"), (tmp_path / "latin1.txt", ":1: not valid UTF-8")):
        status, out, err = run_cli(capsys, "predict", "ner", "--model", str(tagger_dir), "--file", str(path))
        assert status == 2 and out == "" and err.count("\n") == 1 and message in err, err
    (tmp_path / "long_word.txt").write_text("fine\n\nsee supercalifragilisticexpialidocious\n")
    status, out, err = run_cli(capsys, "predict", "ner", "--model", str(tagger_dir), "--max-length", "8",
                               "--file", str(tmp_path / "long_word.txt"))
    assert status == 0 and [json.loads(line)["line"] for line in out.splitlines()] == [1, 3]  # every line tagged
    assert json.loads(out.splitlines()[1])["words"] == ["see", "supercalifragilisticexpialidocious"]
    warning = [line for line in err.splitlines() if "warning" in line]
    assert len(warning) == 1 and warning[0].startswith("nlu: warning: 1 word(s) have more sub-tokens than a window of "
                                                       "max_length=8 holds and are read from their first 6")
    word = "supercalifragilisticexpialidocious"
    assert warning[0].endswith(f"{tmp_path / 'long_word.txt'}:3: word 1 ('{word}'), 16 sub-tokens"), err
    with pytest.raises(SystemExit):
        cli.main(["predict", "ner", "--model", str(tagger_dir), "--text", "hello", "--batch-size", "0"])
    assert "argument --batch-size: '0' is not a whole number of at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_evaluate_takes_a_max_length_without_a_stride(tagger_dir, tmp_path, capsys):
    """As `nlu evaluate --max-length 32` on a model fine-tuned at 128/32: the saved stride no longer fits."""
    import shutil

    model_dir = shutil.copytree(tagger_dir, tmp_path / "model")
    save_input_settings(model_dir, max_length=32, stride=28)
    data = tmp_path / "test.conll"
    sentences = read_ner_file(WNUT_TEST)[:30]
    data.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(s.words, s.tags)) + "\n" for s in sentences))
    status, out, err = run_cli(capsys, "evaluate", "ner", "--model", str(model_dir), "--data", str(data),
                               "--max-length", "24", "--out", str(tmp_path / "evaluation"))
    assert status == 0, err
    metrics = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert metrics["words"] == sum(len(s.words) for s in sentences)
    assert metrics["entity_strict"]["averages"]["micro"]["support"] == sum(
        tag.startswith("B-") for s in sentences for tag in s.tags)  # every gold entity scored
    printed = json.loads(out[: out.rindex("}") + 1])["entity_f1_strict"]
    assert printed == metrics["entity_strict"]["averages"]["micro"]["f1"]  # the headline is the file's figure


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_device_is_chosen_or_refused_in_one_line(tagger_dir, capsys):
    assert nlu.load(tagger_dir).device.type == "cpu" and nlu.load(tagger_dir, "cpu").device.type == "cpu"
    status, out, err = run_cli(capsys, "predict", "ner", "--model", str(tagger_dir), "--device", "cuda", "--text", "hi")
    assert status == 2 and out == "" and err == "nlu: error: device 'cuda' was asked for, but torch sees no CUDA GPU here\n"


def test_evaluate_reads_a_raw_file_the_way_the_training_files_were_read(tmp_path, capsys):
    """A model fine-tuned on IOB1 files with a tag map scores a raw file of the same kind as is."""
    model = save_tiny_model(ForTokenClassification, tmp_path / "model", ["O", "B-PER", "I-PER"], max_length=32,
                            stride=8, scheme="iob1", tag_map={"PERSON": "PER", "MISC": "O"}, token_column=0,
                            tag_column=-1)
    raw = tmp_path / "raw.txt"
    raw.write_text("Anna x I-PERSON\nsah x O\nParis x I-MISC\n\nBob x I-PERSON\nLee x I-PERSON\n", encoding="utf-8")
    assert cli.main(["evaluate", "ner", "--model", str(model), "--data", str(raw), "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["sentences"] == 2 and metrics["entity_strict"]["per_class"]["PER"]["support"] == 2
    # the report says what reading changed: 3 entities opened by I- (IOB1), Anna and Bob Lee renamed, Paris dropped
    assert metrics["reading_changes"] == {"IOB1 entities converted": 3, "entities renamed by tag_map PERSON → PER": 2,
                                          "entities dropped by tag_map MISC → O": 1}
    assert "IOB1 entities converted: 3; entities renamed by tag_map PERSON → PER: 2" in \
        (tmp_path / "eval" / "report.md").read_text()
    assert cli.main(["evaluate", "ner", "--model", str(model), "--data", str(raw), "--out", str(tmp_path / "e2"),
                     "--scheme", "iob2"]) == 2
    assert "data.scheme=iob1" in capsys.readouterr().err


def test_evaluate_reads_a_classification_file_as_training_read_its_files(tmp_path, capsys):
    """Columns and TSV quoting are saved with the classifier: a quoted TSV with a two-line text and
    other column names is read without flags; the command line still overrides them."""
    model = save_tiny_model(ForSequenceClassification, tmp_path / "model", ["good", "bad"], 0.5, max_length=32,
                            text_column="review", text_pair_column=None, label_column="verdict", tsv_quotes=True)
    data = tmp_path / "test.tsv"
    data.write_text('review\tverdict\n"a ""great"" film\nin two lines"\tgood\nso so\tbad\n', encoding="utf-8")
    assert cli.main(["evaluate", "classify", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "e")]) == 0
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["examples"] == 2
    capsys.readouterr()
    assert cli.main(["evaluate", "classify", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "e2"),
                     "--label-column", "label"]) == 2
    assert "label" in capsys.readouterr().err


def test_evaluate_names_the_file_and_line_of_a_tag_the_model_does_not_know(tmp_path, capsys):
    model = save_tiny_model(ForTokenClassification, tmp_path / "model", ["O", "B-PER", "I-PER"], max_length=32, stride=8)
    raw = tmp_path / "raw.conll"
    raw.write_text("Anna\tB-PER\n\nin\tO\nLondon\tB-XYZ\n", encoding="utf-8")
    assert cli.main(["evaluate", "ner", "--model", str(model), "--data", str(raw), "--out", str(tmp_path / "eval")]) == 2
    assert f"{raw}:4: tag(s) ['B-XYZ'] are not among the model's labels" in capsys.readouterr().err  # London's line


def test_predict_names_inputs_it_cannot_read_and_says_when_it_cuts_a_text(tagger_dir, tmp_path):
    classifier = nlu.load(save_tiny_model(ForSequenceClassification, tmp_path / "classifier", ["a", "b"], 0.5,
                                          max_length=16))
    for predictor in (nlu.load(tagger_dir), classifier):
        with pytest.raises(DataError, match=r"^<input>: expected a text or a list of them, got None$"):
            predictor.predict(None)
    with pytest.raises(DataError, match=r"^<input>:2: None is not a text$"):
        classifier.predict(["fine", None])
    texts = ["fine", "so so"]  # any iterable of texts, as a numpy array or a generator gives them
    assert classifier.predict(iter(texts)) == classifier.predict(np.array(texts)) == classifier.predict(texts)
    tagger = nlu.load(tagger_dir)
    assert tagger.predict([np.array(["John", "Smith"])])[0].words == ["John", "Smith"]
    with pytest.warns(UserWarning, match=r"^1 text\(s\) longer than max_length=16 sub-tokens were classified from "
                                         r"their first 16$"):
        classifier.predict(["short", "word " * 40])
    with pytest.warns(UserWarning, match="longer than max_length") as caught:
        classifier.predict("word " * 40)  # one string: the warning points at this line, not into nlu
    assert caught[0].filename == __file__
    with pytest.warns(UserWarning, match=r"^2 text\(s\) are blank \(input 2, 4\): their label is what the model says "
                                         r"of no text$"):
        blank = classifier.predict(["fine", "", "so so", " \t"])
    assert len(blank) == 4 and blank[1] == blank[3] != blank[0]  # a label all the same: one per input, none dropped
    for call in (tagger.predict, classifier.predict, lambda texts: tagger.predict([["ab", "\ud83d"]])):
        with pytest.raises(DataError, match=r"^<input>:1: character 3 \('\\ud83d'\) is a surrogate, half a UTF-16 "
                                            r"character: not text"):
            call(["ab \ud83d cd"])  # half an emoji, as JSON cut in the middle of one gives


def test_cli_tags_pre_split_words_whole_with_offsets_into_each_line(tagger_dir, tmp_path, capsys):
    """--words: what training files keep whole ("İsrail'in", "U.S.") is one word, as with is_split_into_words."""
    lines = ["İsrail'in  başkenti\tKudüs", "", "Obama met   U.S. officials in New-York ."]
    (tmp_path / "words.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, out, err = run_cli(capsys, "predict", "ner", "--model", str(tagger_dir), "--words", "--file",
                               str(tmp_path / "words.txt"))
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [record["line"] for record in records] == [1, 3]
    assert [record["words"] for record in records] == [["İsrail'in", "başkenti", "Kudüs"],
                                                       ["Obama", "met", "U.S.", "officials", "in", "New-York", "."]]
    expected = nlu.load(tagger_dir).predict([record["words"] for record in records], is_split_into_words=True)
    assert [record["tags"] for record in records] == [result.tags for result in expected]
    assert sum(len(record["entities"]) for record in records) > 0
    for record, line in zip(records, (lines[0], lines[2])):
        for entity in record["entities"]:
            assert entity["text"] == line[entity["start"]:entity["end"]] and entity["text"].split()[0] in record["words"]
    assert cli.main(["predict", "classify", "--model", str(tagger_dir), "--words", "--text", "a b"]) == 2
    assert capsys.readouterr().err == "nlu: error: --words is for nlu predict ner (a classifier reads text as it is)\n"
