"""NER fine-tuning end to end on a slice of the shipped WNUT-16 data, and its command line."""

import json
from pathlib import Path

import pytest

from nlu import cli
from nlu.data.ner import NerSentence, read_ner_file
from nlu.errors import ConfigError, DataError
from nlu.model import ForTokenClassification
from nlu.runs import resolve
from nlu.settings import load_settings
from nlu.tasks import ner
from nlu.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WNUT = ROOT / "data" / "ner" / "wnut16"


def write_conll(path: Path, sentences) -> Path:
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(s.words, s.tags)) + "\n" for s in sentences))
    return path


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    """A tiny model fine-tuned on 400 real tweets; the run folder is shared by the tests below."""
    folder = tmp_path_factory.mktemp("ner")
    train = read_ner_file(WNUT / "train.conll")
    files = {"train": write_conll(folder / "train.conll", train[:400]),
             "dev": write_conll(folder / "dev.conll", read_ner_file(WNUT / "dev.conll")[:80]),
             "test": write_conll(folder / "test.conll", read_ner_file(WNUT / "test.conll")[:80])}
    texts = iter([" ".join(s.words) for s in train])
    save_tokenizer(train_tokenizer(texts, vocab_size=1500), folder / "tokenizer")
    overrides = [f"data.{split}={path}" for split, path in files.items()] + [
        f"data.tokenizer={folder / 'tokenizer'}", "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
        "model.intermediate_size=64", "model.max_position_embeddings=64", "data.max_length=64",
        f"training.output_dir={folder / 'run'}", "training.max_steps=150", "training.eval_every=50",
        "training.learning_rate=3e-3", "training.batch_size=16", "training.cpu=true", "training.log_every=10",
        "training.early_stopping_patience=0",
    ]
    summary = ner.run(load_settings(ROOT / "tasks" / "wnut16_ner.yaml", overrides))
    return {"folder": folder, "run": folder / "run", "summary": summary, "files": files}


@pytest.mark.slow
def test_fine_tuning_loss_falls_and_the_report_is_complete(tagger):
    run = tagger["run"]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [record["loss"] for record in log if record["split"] == "train"]
    assert losses[-1] < 0.6 * losses[0], losses
    metrics = json.loads((run / "test" / "metrics.json").read_text())
    assert metrics["words"] == sum(len(s.words) for s in read_ner_file(tagger["files"]["test"]))
    gold_entities = sum(tag.startswith("B-") for s in read_ner_file(tagger["files"]["test"]) for tag in s.tags)
    assert metrics["entity_strict"]["averages"]["micro"]["support"] == gold_entities  # every gold entity scored
    for prefix in ("tags", "entities"):
        for kind in ("raw", "true", "pred", "all"):
            for suffix in ("csv", "png"):
                assert (run / "test" / f"{prefix}_confusion_{kind}.{suffix}").stat().st_size > 0
    report = (run / "test" / "report.md").read_text()
    assert "Entities per type" in report and "Entity outcomes" in report
    assert tagger["summary"]["best_step"] in (50, 100, 150)


@pytest.mark.slow
def test_long_sentences_are_windowed_and_every_word_is_predicted(tagger):
    model = ForTokenClassification.from_pretrained(tagger["run"] / "best")
    tokenizer = load_tokenizer(tagger["run"] / "best")
    words = [w for s in read_ner_file(tagger["files"]["test"])[:20] for w in s.words]
    assert len(words) > 200  # far beyond max_length=64 sub-tokens
    sentence = NerSentence(words, ["O"] * len(words), "long", 1)
    tags, windowed = ner.predict_tags(model, tokenizer, [sentence], max_length=64, stride=16, batch_size=8)
    assert len(tags[0]) == len(words) and windowed >= 3
    assert set(tags[0]) <= set(model.config.labels)


@pytest.mark.slow
def test_predict_and_evaluate_from_the_command_line(tagger, capsys):
    """In-process through cli.main (test_cli runs the installed entry point as its own process)."""
    model_dir = tagger["run"] / "best"
    assert cli.main(["predict", "ner", "--model", str(model_dir),
                     "--text", "Obama visited London with Google people today"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["words"][0] == "Obama" and len(record["tags"]) == 7
    out = tagger["folder"] / "evaluation"
    assert cli.main(["evaluate", "ner", "--model", str(model_dir), "--data", str(tagger["files"]["test"]),
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    headline = json.loads(printed[: printed.rindex("}") + 1])
    expected = json.loads((tagger["run"] / "test" / "metrics.json").read_text())
    assert headline["entity_f1_strict"] == pytest.approx(expected["entity_strict"]["averages"]["micro"]["f1"])
    assert (out / "report.md").exists()
    assert cli.main(["evaluate", "ner", "--model", str(tagger["run"]), "--data", str(tagger["files"]["test"])]) == 0
    # beside the run folder, not in best/, one folder per data file
    folder = f"{tagger['files']['test'].resolve().parent.name}-test"  # its folder's name and its own: test.* stay apart
    assert capsys.readouterr().out.endswith(f"report: {tagger['run'] / 'evaluation' / folder / 'report.md'}\n")


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    """In-process (the entry point itself runs in test_predict_and_evaluate_from_the_command_line):
    a traceback would fail the test as an exception, a message is checked line by line."""
    broken = tmp_path / "broken.conll"
    broken.write_text("Obama\tB-person\nvisited\tO\nLondon\tI-geo-loc\n")
    task_file = str(ROOT / "tasks" / "wnut16_ner.yaml")
    assert cli.main(["finetune", "ner", "--config", task_file, f"data.train={broken}",
                     f"training.output_dir={tmp_path / 'run'}"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("nlu: error: ") and f"{broken}:3" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before anything was written
    assert cli.main(["finetune", "ner", "--config", task_file, "training.lerning_rate=1"]) == 2
    assert "unknown option(s) ['lerning_rate']" in capsys.readouterr().err


def test_selection_metric_is_checked_and_its_direction_follows_from_it():
    from nlu.errors import ConfigError
    from nlu.tasks.finetune import choose_selection
    from nlu.training.config import TrainingConfig

    training = TrainingConfig(select_metric="macro_f1")  # select_mode left at the loop's default, min
    choose_selection(training, "f1", ner.NER_METRICS)
    assert (training.select_metric, training.select_mode) == ("macro_f1", "max")
    with pytest.raises(ConfigError, match="training.select_metric must be one of f1, precision, recall, macro_f1"):
        choose_selection(TrainingConfig(select_metric="f1_score"), "f1", ner.NER_METRICS)


def test_without_a_dev_file_a_seeded_dev_set_is_held_out_of_train():
    data = ner.NerData(dev=None, dev_fraction=0.1, split_seed=5)
    splits = ner.load_data(data)
    train, dev = splits.train, splits.dev
    full = read_ner_file(data.train)
    assert len(dev) == round(0.1 * len(full)) and len(train) + len(dev) == len(full)
    assert {(s.source, s.line) for s in train}.isdisjoint({(s.source, s.line) for s in dev})
    assert [s.line for s in ner.load_data(data).dev] == [s.line for s in dev]  # seeded
    assert [s.line for s in ner.load_data(ner.NerData(dev=None, split_seed=6)).dev] != [s.line for s in dev]
    with pytest.raises(ConfigError, match="dev_fraction must be between 0 and 1"):
        ner.load_data(ner.NerData(dev=None, dev_fraction=1.5))


def test_a_column_chosen_wrong_is_refused_before_training(tmp_path):
    """GermEval-style lines (token, a placeholder column, B-X, the tag): the placeholder as tags made
    every word an entity (F1 1.0); as tokens, every word the same."""
    lines = ["Gleich X B-X O", "darauf X B-X O", "Anna X B-X B-PER", "Weber X B-X I-PER", "", "in X B-X O",
             "Bonn X B-X B-LOC"]
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    files = {split: str(tmp_path / f"{split}.txt") for split in ("train", "dev", "test")}
    assert ner.load_data(ner.NerData(**files)).train[1].tags == ["O", "B-LOC"]
    with pytest.raises(DataError, match=r"train.txt: every one of the 6 training words is tagged B-X: a tagger could "
                                        r"only learn that, .*data.tag_column=2; the first tags read: B-X B-X B-X B-X\)"):
        ner.load_data(ner.NerData(**files, tag_column=2))
    # Word segmentation as BIO tags every word, with no O: said, not refused.
    (tmp_path / "seg.txt").write_text("我 B-W\n爱 B-W\n北 B-W\n京 I-W\n\n你 B-W\n好 I-W\n")
    with pytest.warns(UserWarning, match=r"seg.txt: none of the 6 training words is tagged O, so every word is part "
                                         r"of an entity; if that is not the task, is the tag column right"):
        assert len(ner.load_data(ner.NerData(**{split: str(tmp_path / "seg.txt") for split in files})).train) == 2
    with pytest.raises(DataError, match=r"train.txt: every one of the 6 training words is 'X': is the token column "
                                        r"right \(data.token_column=1\)"):
        ner.load_data(ner.NerData(**files, token_column=1))


def test_a_tokenizer_larger_than_the_model_vocabulary_is_refused(tagger, tmp_path):
    texts = iter([" ".join(s.words) for s in read_ner_file(WNUT / "train.conll")])
    save_tokenizer(train_tokenizer(texts, vocab_size=3000), tmp_path / "big")
    settings = load_settings(ROOT / "tasks" / "wnut16_ner.yaml",
                             [f"init={tagger['run'] / 'model'}", f"data.tokenizer={tmp_path / 'big'}"], task="ner")
    with pytest.raises(ConfigError, match="has 3,000 tokens but the model .* embeds only 1,500"):
        ner.run(settings)


def test_entity_words_that_raw_text_splits_are_named_with_the_remedies():
    """GermEval/WikiNER keep "Baden-Württemberg" whole; predict() on raw text splits it at the hyphen."""
    from nlu.tasks.ner import split_words_note

    whole = [NerSentence(["in", "Baden-Württemberg", "und", "Bayern"], ["O", "B-LOC", "O", "B-LOC"], "de.conll", 1)]
    plain = [NerSentence(["in", "Bayern"], ["O", "B-LOC"], "de.conll", 4)] * 100
    assert split_words_note(whole + plain, label_all_subtokens=False) is None  # 1 of 102 entity words: under 1%
    note = split_words_note(whole * 2 + plain, label_all_subtokens=False)  # 2 of 104
    assert note.startswith("2 of the 104 entity words of the training data hold punctuation (Baden-Württemberg, ...)")
    assert note.endswith("(is_split_into_words=True; nlu predict ner --words), or train with data.label_all_subtokens=true")
    remedy = split_words_note(whole * 2 + plain, label_all_subtokens=True)
    assert remedy.endswith("(is_split_into_words=True; nlu predict ner --words)")


def test_a_model_from_scratch_trains_its_vocabulary_once_on_the_training_texts(tmp_path, capsys):
    """data.tokenizer=N: no nlu pretrain needed for a tokenizer; a resumed run keeps the one it trained."""
    train = read_ner_file(WNUT / "train.conll")[:120]
    files = {"train": write_conll(tmp_path / "train.conll", train),
             "dev": write_conll(tmp_path / "dev.conll", read_ner_file(WNUT / "dev.conll")[:20]),
             "test": write_conll(tmp_path / "test.conll", read_ner_file(WNUT / "test.conll")[:20])}
    overrides = [f"data.{split}={path}" for split, path in files.items()] + [
        "data.tokenizer=400", "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
        "model.intermediate_size=64", "model.max_position_embeddings=64", "data.max_length=64",
        f"training.output_dir={tmp_path / 'run'}", "training.max_steps=2", "training.cpu=true"]
    settings = load_settings(ROOT / "tasks" / "wnut16_ner.yaml", overrides)
    ner.run(settings)
    trained = tmp_path / "run" / "tokenizer" / "tokenizer.json"
    assert f"tokenizer: a WordPiece vocabulary of 400 trained on the training texts ({trained.parent})" in \
        capsys.readouterr().out
    tokenizer = load_tokenizer(trained.parent)
    words = [word for sentence in train for word in sentence.words]
    assert len(tokenizer) == 400 and sum(tokenizer.unk_token_id in tokenizer(word)["input_ids"] for word in words) == 0
    assert (tmp_path / "run" / "best" / "tokenizer.json").read_bytes() == trained.read_bytes()  # what the model uses
    written = trained.stat().st_mtime_ns
    ner.run(settings)  # the same run again: resumed, not retrained
    assert trained.stat().st_mtime_ns == written
    assert f"tokenizer: {trained.parent}, trained on the same texts by an earlier start" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="^command line: data.tokenizer=400 trains a vocabulary for a model from "
                                          "scratch; init brings"):  # before any data is read
        resolve(load_settings(ROOT / "tasks" / "wnut16_ner.yaml", overrides + [f"init={tmp_path / 'run'}"]))


def test_a_run_keeps_its_tokenizer_only_for_the_texts_and_options_it_was_trained_on(tmp_path, capsys):
    """A start that failed after training its tokenizer, then other settings: a new one, not the stale one."""
    from accelerate import PartialState

    from nlu.tasks.pretrain import run_tokenizer

    sentences = [" ".join(sentence.words) for sentence in read_ner_file(WNUT / "train.conll")]
    first = run_tokenizer(tmp_path, lambda: sentences[:200], 300, PartialState())
    record = tmp_path / "tokenizer" / "trained_on.json"
    written = record.stat().st_mtime_ns
    assert run_tokenizer(tmp_path, lambda: iter(sentences[:200]), 300, PartialState()).get_vocab() == first.get_vocab()
    assert record.stat().st_mtime_ns == written  # the same texts and options: loaded, not trained again
    other_texts = run_tokenizer(tmp_path, lambda: sentences[200:400], 300, PartialState())
    assert other_texts.get_vocab() != first.get_vocab()
    assert len(run_tokenizer(tmp_path, lambda: sentences[200:400], 250, PartialState())) == 250
    record.unlink()  # a tokenizer from before nlu kept a record: loaded as it is
    assert len(run_tokenizer(tmp_path, lambda: sentences[:200], 300, PartialState())) == 250
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"tokenizer: a WordPiece vocabulary of 300 trained on the training texts ({tmp_path / 'tokenizer'})"
    assert ["by an earlier start" in line for line in printed] == [False, True, False, False, False]
    assert printed[-1].endswith("kept from an earlier start (which recorded no texts)")
