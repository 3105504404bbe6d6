"""nlu export: the exported folder, served by transformers' pipelines, gives what nlu.load(...).predict gives.

Random-weight models (see test_predict.py): parity of two serving paths holds for any weights.
"""

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
import yaml

import nlu
from nlu import cli
from nlu.data.ner import label_list, read_ner_file
from nlu.export import export, training_lines
from nlu.settings import MADE_BY
from nlu.model import ForSequenceClassification, ForTokenClassification
from test_predict import WNUT_TEST, save_tiny_model
from test_tokenizer import TURKISH
from test_unigram import unigram_tokenizer

ROOT = Path(__file__).resolve().parents[1]
RT_TEST = ROOT / "data" / "classification" / "rotten_tomatoes" / "test.csv"
LABELS = ["fresh", "rotten", "plot"]


def pipeline(task: str, model: Path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.pipeline(task, model=str(model), device="cpu", **options)


@pytest.fixture(scope="module")
def wnut_texts() -> list[str]:
    return [" ".join(sentence.words) for sentence in read_ner_file(WNUT_TEST)]


@pytest.fixture(scope="module")
def ner_export(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("ner_export")
    model = save_tiny_model(ForTokenClassification, folder / "model", label_list(read_ner_file(WNUT_TEST)),
                            max_length=64, stride=16)
    return {"model": model, "out": export(model, folder / "hf")}


@pytest.fixture(scope="module")
def classifier_export(tmp_path_factory) -> dict[str, Path]:
    """A classifier trained with logit_adjustment=predict: its run folder holds settings and scores."""
    torch.manual_seed(4)
    run = tmp_path_factory.mktemp("classify_run")
    model = save_tiny_model(ForSequenceClassification, run / "best", LABELS, 0.5, max_length=48)
    (model / "logit_adjustment.json").write_text(json.dumps({"subtract": [1.0, 0.0, -1.0]}))
    (run / "settings.yaml").write_text(MADE_BY + "nlu classify --config tasks/rotten_tomatoes.yaml\n" + yaml.safe_dump({
        "task": "classify", "init": "runs/pretrain_news/model", "from_scratch": False,
        "data": {"train": "data/classification/rotten_tomatoes/train.csv", "logit_adjustment": "predict"},
        "training": {"max_steps": 300, "learning_rate": 5e-4, "batch_size": 32, "seed": 42}}))
    (run / "summary.json").write_text(json.dumps({"steps": 300, "best_step": 250, "test_macro_f1": 0.6123,
                                                  "dev_macro_f1": 0.6456}))
    return {"model": model, "run": run, "out": export(run, run.parent / "hf")}


def texts_of(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_ner_pipeline_gives_the_entities_nlu_gives_on_the_test_split(ner_export, wnut_texts):
    tagger, served = nlu.load(ner_export["out"]), pipeline("token-classification", ner_export["out"],
                                                           aggregation_strategy="first")
    assert tagger.max_length == 64 and tagger.stride == 16  # read back from the export
    tokenizer = tagger.tokenizer
    short = [text for text in wnut_texts if len(tokenizer(text)["input_ids"]) <= 64]
    assert len(short) == 201
    compared = 0
    for text, ours, theirs in zip(short, nlu.load(ner_export["model"]).predict(short), served(short, batch_size=32)):
        assert [(e.type, e.start, e.end) for e in ours.entities] == [(e["entity_group"], e["start"], e["end"])
                                                                      for e in theirs], text
        np.testing.assert_allclose([e.score for e in ours.entities], [e["score"] for e in theirs], atol=1e-5)
        compared += len(theirs)
    assert compared > 500


def test_ner_pipeline_reads_long_texts_without_crashing(ner_export, wnut_texts):
    """Texts beyond max_length: truncated without stride, covered to the end with it (both served,
    neither crashes). Entities near window edges can differ from nlu's, which cuts windows at word
    boundaries and reads each word where it has the most context; the pipeline cuts sub-tokens."""
    long_text = " ".join(wnut_texts[:10])
    tokenizer = transformers.AutoTokenizer.from_pretrained(ner_export["out"])
    assert tokenizer.model_max_length == 64 and len(tokenizer(long_text)["input_ids"]) > 300
    truncated = pipeline("token-classification", ner_export["out"], aggregation_strategy="first")(long_text)
    windowed = pipeline("token-classification", ner_export["out"], aggregation_strategy="first", stride=16)(long_text)
    ours = nlu.load(ner_export["model"]).predict(long_text).entities
    cut = max(e["end"] for e in truncated)
    assert cut < len(long_text) // 3 < max(e["end"] for e in windowed)
    for entity in windowed:
        assert entity["start"] < entity["end"] and long_text[entity["start"]:entity["end"]].strip()
    assert max(e.end for e in ours) > len(long_text) * 0.8


@pytest.mark.slow
def test_classifier_pipeline_gives_nlu_labels_with_the_adjustment_folded_in(classifier_export):
    texts = texts_of(RT_TEST)
    classifier = nlu.load(classifier_export["model"])
    ours = classifier.predict(texts)
    served = pipeline("text-classification", classifier_export["out"], truncation=True, top_k=None)
    theirs = [{item["label"]: item["score"] for item in row} for row in served(texts, batch_size=64)]
    assert [max(row, key=row.get) for row in theirs] == [result.label for result in ours]
    np.testing.assert_allclose([[row[label] for label in LABELS] for row in theirs],
                               [[result.probabilities[label] for label in LABELS] for result in ours], atol=1e-5)
    assert len(set(result.label for result in ours)) == 3
    # The adjustment matters: without it (log p + a is the unadjusted logit, up to a constant) a share
    # of the labels would differ.
    adjustment = json.loads((classifier_export["model"] / "logit_adjustment.json").read_text())["subtract"]
    unadjusted = [LABELS[int(np.argmax(np.log([r.probabilities[label] for label in LABELS]) + adjustment))] for r in ours]
    assert sum(a != b.label for a, b in zip(unadjusted, ours)) > len(texts) // 10
    # Texts beyond max_length (48) are read up to it by both.
    longest = max(texts, key=len) * 3
    assert served([longest])[0][0]["label"] == nlu.load(classifier_export["model"]).predict(longest).label


def test_exported_tokenizer_knows_its_length(classifier_export):
    config = json.loads((classifier_export["out"] / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 48
    assert json.loads((classifier_export["out"] / "input_settings.json").read_text()) == {"max_length": 48, "stride": 32}


def test_model_cards_say_how_to_serve_and_what_was_trained(ner_export, classifier_export):
    card = (ner_export["out"] / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: token-classification\n")
    assert 'aggregation_strategy="first", stride=16)' in card and "`B-company`" in card
    assert "No run folder was found" in card
    card = (classifier_export["out"] / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "truncation=True" in card
    assert "| test_macro_f1 | 0.6123 |" in card and "| dev_macro_f1 | 0.6456 |" in card
    assert f"- Task: `classify`, run folder `{classifier_export['run']}`, made by `nlu classify --config " \
           "tasks/rotten_tomatoes.yaml`." in card
    assert "Started from: `runs/pretrain_news/model`" in card and "- Training: max_steps 300, learning_rate" in card
    assert "train `data/classification/rotten_tomatoes/train.csv`; logit_adjustment predict." in card
    # learning_rate auto raised the epochs: the card lists the settings as set, then what auto made of them
    record = {"settings": {"task": "classify", "training": {"max_steps": 0, "epochs": 3.0, "learning_rate": "auto"}},
              "summary": {"recipe": "learning rate 0.001 ...; 3 epochs of 24 batches are 72 steps, under the 300 a "
                                    "small data set needs: 13 epochs", "steps": 312}, "run_dir": "runs/party"}
    assert any(line.startswith("- Training as set: epochs 3.0, learning_rate auto; nlu ") and
               line.endswith("Chosen by `auto`: learning rate 0.001 ...; 3 epochs of 24 batches are 72 steps, under the "
                             "300 a small data set needs: 13 epochs.") for line in training_lines(record))
    assert "folded into the classifier bias" in card


def test_export_command_and_its_errors(classifier_export, tmp_path, capsys):
    assert cli.main(["export", "--model", str(classifier_export["run"]), "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "README.md").is_file() and "model card" in capsys.readouterr().out
    assert cli.main(["export", "--model", str(classifier_export["out"]), "--out", str(tmp_path / "again")]) == 2
    assert "not an nlu model folder" in capsys.readouterr().err
    # predict and evaluate take the exported (transformers) folder, adjustment included
    assert cli.main(["predict", "classify", "--model", str(tmp_path / "hf"), "--text", "so so"]) == 0
    label = json.loads(capsys.readouterr().out)["label"]
    assert label == nlu.load(classifier_export["model"]).predict("so so").label
    data = tmp_path / "labelled.csv"
    data.write_text("text,label\nso so," + label + "\na fine film,fresh\na man goes home,plot\n")
    assert cli.main(["evaluate", "classify", "--model", str(tmp_path / "hf"), "--data", str(data)]) == 0
    assert (tmp_path / "hf" / "evaluation" / f"{tmp_path.name}-labelled" / "metrics.json").is_file()  # a folder per data file


def test_an_export_reads_files_as_its_model_did_and_never_writes_over_it(tmp_path, capsys):
    """input_settings.json travels whole: evaluate on the export reads the IOB1, tag-mapped file the
    model was trained on without being told again; --out onto the model (or its run folder) is refused."""
    torch.manual_seed(5)
    model = save_tiny_model(ForTokenClassification, tmp_path / "run" / "best", ["O", "B-PER", "I-PER"], max_length=32,
                            stride=8, scheme="iob1", tag_map={"PERSON": "PER"}, token_column=0, tag_column=-1)
    out = export(model, tmp_path / "hf")
    saved = json.loads((out / "input_settings.json").read_text())
    assert saved == {"max_length": 32, "stride": 8, "scheme": "iob1", "tag_map": {"PERSON": "PER"},
                     "token_column": 0, "tag_column": -1}
    data = tmp_path / "iob1.conll"
    data.write_text("Anna I-PERSON\nKarenina I-PERSON\nreads O\n")
    assert cli.main(["evaluate", "ner", "--model", str(out), "--data", str(data)]) == 0
    scores = json.loads((out / "evaluation" / f"{tmp_path.name}-iob1" / "metrics.json").read_text())  # <folder>-<file>
    assert scores["entity_strict"]["averages"]["micro"]["support"] == 1
    other = tmp_path / "ru.conll"  # another language's file, with its own scheme and entity names
    other.write_text("Анна\tB-PERS\nчитает\tO\nв\tO\nМоскве\tB-LOC\n")
    task = tmp_path / "ru.yaml"
    task.write_text("task: ner\ndata:\n  tag_map: {PERS: PER, LOC: O}\n")
    assert cli.main(["evaluate", "ner", "--model", str(out), "--data", str(other)]) == 2
    assert "not among the model's labels" in capsys.readouterr().err  # read as the model's own files were
    assert cli.main(["evaluate", "ner", "--model", str(out), "--data", str(other), "--config", str(task)]) == 0
    scores = json.loads((out / "evaluation" / f"{tmp_path.name}-ru" / "metrics.json").read_text())
    assert scores["entity_strict"]["averages"]["micro"]["support"] == 1  # Анна: PERS → PER; Москве dropped
    for target in (model, tmp_path / "run"):
        capsys.readouterr()
        assert cli.main(["export", "--model", str(model), "--out", str(target)]) == 2
        assert "would write over the model it exports" in capsys.readouterr().err
    assert json.loads((model / "config.json").read_text())["architecture"] == "ForTokenClassification"
    capsys.readouterr()
    assert cli.main(["export", "--model", str(model), "--out", str(data)]) == 2
    assert "a file, not a folder to export into" in capsys.readouterr().err


def test_a_sentencepiece_tagger_is_served_by_the_code_its_card_gives(wnut_texts, tmp_path):
    """transformers' pipeline cannot find the words of a SentencePiece tokenizer's pieces, so the card of such
    an export gives word-level code instead: run as printed, it gives nlu's tag for every word."""
    from nlu.config import EncoderConfig
    from nlu.tasks.finetune import save_input_settings
    from nlu.tokenizer import save_tokenizer

    tokenizer = unigram_tokenizer(wnut_texts[:800])
    torch.manual_seed(6)
    config = EncoderConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                           max_position_embeddings=64, labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
                           initializer_range=0.5, pad_token_id=tokenizer.pad_token_id)
    ForTokenClassification(config).save_pretrained(tmp_path / "model")
    save_tokenizer(tokenizer, tmp_path / "model")
    save_input_settings(tmp_path / "model", max_length=64, stride=16)
    out = export(tmp_path / "model", tmp_path / "hf")
    card = (out / "README.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    assert "pipeline(" not in code and "is_split_into_words=True" in code
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 — the card's own example, as a user would paste it
    tagger = nlu.load(tmp_path / "model")
    texts = ["Obama visited London, then Berlin.", "Hello (world) - it's 5:30pm!", "東京駅で Obama に会った。", *wnut_texts[:200]]
    fitting = [text for text in texts if len(tokenizer(tagger.predict(text).words, is_split_into_words=True)
                                              ["input_ids"]) <= 64]
    assert len(fitting) > 100
    tagged = [namespace["tag"](text) for text in fitting]
    assert tagged == [list(zip(result.words, result.tags)) for result in tagger.predict(fitting)]
    assert len({tag for sentence in tagged for _, tag in sentence}) >= 3  # the weights tell words apart
    long_text = " ".join(texts)  # past max_length: every word comes back, those beyond the cut untagged
    words, tags = zip(*namespace["tag"](long_text))
    assert list(words) == tagger.predict(long_text).words and tags[0] is not None and tags[-1] is None


def test_a_turkish_tagger_is_served_with_its_words_whole(tmp_path):
    """Words starting with İ: lowercased by Unicode's rule, the pipeline would join each to the word
    before it (nlu's tokenizer folds İ to i, see test_tokenizer)."""
    from nlu.config import EncoderConfig
    from nlu.tasks.finetune import save_input_settings
    from nlu.tokenizer import save_tokenizer, train_tokenizer

    tokenizer = train_tokenizer(iter(TURKISH * 3), vocab_size=300, min_frequency=1)
    torch.manual_seed(7)
    config = EncoderConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                           max_position_embeddings=64, labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
                           initializer_range=0.5)
    ForTokenClassification(config).save_pretrained(tmp_path / "model")
    save_tokenizer(tokenizer, tmp_path / "model")
    save_input_settings(tmp_path / "model", max_length=64, stride=16)
    served = pipeline("token-classification", export(tmp_path / "model", tmp_path / "hf"), aggregation_strategy="first")
    ours = nlu.load(tmp_path / "model").predict(TURKISH)
    assert [[(e.type, e.start, e.end) for e in result.entities] for result in ours] == \
        [[(e["entity_group"], e["start"], e["end"]) for e in entities] for entities in served(TURKISH)]
    assert sum(text[e.start] == "İ" for text, result in zip(TURKISH, ours) for e in result.entities) >= 2
