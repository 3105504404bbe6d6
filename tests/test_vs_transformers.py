"""nlu against transformers (issue #11): an exported NER model tags like nlu through transformers'
own pipeline, and ``framework: transformers`` (nlu.reference) does the same work as nlu on a tiny
BERT (offline), refuses what it cannot do, and stands beside nlu in a sweep."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.scheme import IOB2
from sklearn.metrics import f1_score

from nlu.cli import main as nlu_main
from nlu.config import EncoderConfig
from nlu.data.classification import read_table
from nlu.data.ner import label_list, read_ner_file
from nlu.data.subsets import draw_subsets, write_records
from nlu.errors import ConfigError
from nlu.model import ForTokenClassification
from nlu.data.words import words_of_text
from nlu.runs import resolve, run
from nlu.settings import load_settings
from nlu.sweep import Sweep, render_sweep, run_sweep
from nlu.tokenizer import save_tokenizer, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WNUT = ROOT / "data" / "ner" / "wnut16"
RT = ROOT / "data" / "classification" / "rotten_tomatoes"


@pytest.fixture(scope="module")
def wnut_tokenizer(tmp_path_factory):
    """A small WordPiece vocabulary trained on tweets and review snippets (seconds, offline)."""
    texts = [" ".join(s.words) for s in read_ner_file(WNUT / "train.conll")[:400]]
    with open(RT / "train.csv", newline="", encoding="utf-8") as handle:
        texts += [row["text"] for row, _ in zip(csv.DictReader(handle), range(300))]
    directory = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(train_tokenizer(iter(texts), vocab_size=1000), directory)
    return directory


def random_tagger(tokenizer_dir: Path, directory: Path) -> Path:
    """Random weights: predictions spread over all 21 tags, stray I- tags included."""
    from nlu.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    labels = label_list(read_ner_file(WNUT / "train.conll"))
    config = EncoderConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                           max_position_embeddings=128, labels=labels)
    model = ForTokenClassification(config)
    with torch.no_grad():
        model.classifier.linear.weight.normal_(0, 1.0)  # large logits: many distinct tags, not all O
    model.save_pretrained(directory)
    save_tokenizer(tokenizer, directory)
    return directory


def trained_tagger(tokenizer_dir: Path, directory: Path) -> Path:
    """The same model fine-tuned for a few steps through nlu's training loop and NER task (the
    test-set report of ``nlu finetune`` draws plots for half a minute, so it is left out)."""
    from nlu.data.ner import encode_ner
    from nlu.tasks.ner import NerData, NerTask
    from nlu.tokenizer import load_tokenizer
    from nlu.training.config import TrainingConfig
    from nlu.training.loop import train

    tokenizer = load_tokenizer(tokenizer_dir)
    sentences = read_ner_file(WNUT / "train.conll")[:640]
    labels = label_list(read_ner_file(WNUT / "train.conll"))
    model = ForTokenClassification.from_pretrained(random_tagger(tokenizer_dir, directory / "start"))
    windows = encode_ner(sentences, tokenizer, {label: i for i, label in enumerate(labels)}, 128, 32)
    features = [{"input_ids": w.input_ids, "token_type_ids": w.token_type_ids, "labels": w.labels} for w in windows]
    task = NerTask(tokenizer, NerData(), read_ner_file(WNUT / "dev.conll")[:20], 128)
    config = TrainingConfig(output_dir=str(directory / "run"), max_steps=20, learning_rate=3e-3, batch_size=32,
                            cpu=True, save_every=1000, select_metric="f1", select_mode="max")
    result = train(task, model, features, config)
    return result.final_model


def pipeline_words(sentence_words: list[str], groups: list[dict]) -> list[str]:
    """IOB2 tags per whitespace word from the pipeline's entity groups (char spans): a word inside a
    group is B- if the group starts at the word, else I-."""
    tags, position = [], 0
    for word in sentence_words:
        start = position
        position += len(word) + 1
        group = next((g for g in groups if g["start"] <= start < g["end"]), None)
        tags.append("O" if group is None else ("B-" if group["start"] == start else "I-") + group["entity_group"])
    return tags


def as_pipeline_groups(tags: list[str]) -> list[str]:
    """nlu's tags read with the pipeline's grouping rule: a stray I-X (after O or another type)
    opens an entity, so it becomes B-X; a valid IOB2 sequence is unchanged."""
    result, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        result.append(tag)
        previous = tag
    return result


def one_pipeline_word_per_word(tokenizer, words: list[str]) -> bool:
    """The pipeline joins sub-tokens into words only across '##' continuations, so 'U.S.' or
    '@user' are several pipeline words but one nlu word; such sentences are compared token-wise only."""
    for word in words:
        pieces = tokenizer.tokenize(word)
        if not pieces or pieces[0].startswith("##") or not all(p.startswith("##") for p in pieces[1:]):
            return False
    return True


@pytest.fixture
def one_thread():
    """Tiny models: threads only add synchronisation, which costs a lot on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind", ["random", "trained"])
def test_exported_tagger_predicts_like_nlu_through_the_transformers_pipeline(kind, wnut_tokenizer, tmp_path, capsys,
                                                                            one_thread):
    from transformers import AutoTokenizer, pipeline

    model_dir = (random_tagger if kind == "random" else trained_tagger)(wnut_tokenizer, tmp_path / "nlu")
    exported = tmp_path / "exported"
    assert nlu_main(["export", "--model", str(model_dir), "--out", str(exported)]) == 0
    tokenizer = AutoTokenizer.from_pretrained(exported)
    # Tweets whose words are the ones `nlu predict` splits their text into (it splits "t.i" and "'s").
    sentences = [s.words for s in read_ner_file(WNUT / "test.conll")
                 if len(tokenizer(s.words, is_split_into_words=True)["input_ids"]) <= 120
                 and all(tokenizer.tokenize(word) for word in s.words) and words_of_text(" ".join(s.words))[0] == s.words]
    text_file = tmp_path / "sentences.txt"
    text_file.write_text("".join(" ".join(words) + "\n" for words in sentences), encoding="utf-8")
    capsys.readouterr()
    assert nlu_main(["predict", "ner", "--model", str(model_dir), "--file", str(text_file)]) == 0
    ours = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["words"] for record in ours] == sentences

    # Token level, on sentences of every kind: the label the pipeline gives each word's first sub-token.
    tokens = pipeline("token-classification", model=str(exported), tokenizer=tokenizer, aggregation_strategy="none",
                      device="cpu")
    for words, record in list(zip(sentences, ours))[:60]:
        encoding = tokenizer(words, is_split_into_words=True)
        by_index = {entity["index"]: entity["entity"] for entity in tokens(" ".join(words))}
        firsts = {}
        for index, word in enumerate(encoding.word_ids()):
            if word is not None:
                firsts.setdefault(word, index)
        assert [by_index.get(firsts[w], "O") for w in range(len(words))] == record["tags"], words

    # Word level with aggregation_strategy="first" (a word takes its first sub-token's label).
    grouped = pipeline("token-classification", model=str(exported), tokenizer=tokenizer, aggregation_strategy="first",
                       device="cpu")
    clean = [(words, record) for words, record in zip(sentences, ours) if one_pipeline_word_per_word(tokenizer, words)]
    assert len(clean) >= 20
    for words, record in clean:
        assert pipeline_words(words, grouped(" ".join(words))) == as_pipeline_groups(record["tags"]), words
    predicted = [tag for _, record in clean for tag in record["tags"]]
    if kind == "random":  # the comparison covered many entity tags, not only O
        assert len(set(predicted)) >= 10 and sum(tag != "O" for tag in predicted) > 100


@pytest.fixture(scope="module")
def tiny_bert(wnut_tokenizer, tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertModel

    checkpoint = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(wnut_tokenizer)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    return checkpoint


def same_work(task: str, checkpoint: Path, folder: Path, framework: str, *extra: str) -> list[str]:
    """The overrides of one side: 48 training records, 24 dev and test, batch 16, one epoch."""
    data = load_settings(TASK_FILES[task], [], task=task).data
    records = {split: (read_ner_file if task == "ner" else read_table)(ROOT / data[split]) for split in ("train", "dev", "test")}
    drawn, _ = draw_subsets(records, {"train": 48, "dev": 24, "test": 24}, 13)
    files = {split: write_records(folder / "data" / split, drawn[split]) for split in drawn}
    return [f"init={checkpoint}", f"framework={framework}", *[f"data.{split}={path}" for split, path in files.items()],
            f"data.max_length={128 if task == 'ner' else 64}", "training.batch_size=16", "training.epochs=1",
            "training.learning_rate=1e-3", "training.warmup_ratio=0.1", "training.early_stopping_patience=0",
            "training.mixed_precision=no", "training.log_every=1", "training.cpu=true", "training.progress=false",
            f"training.output_dir={folder / framework}", *extra]


TASK_FILES = {"ner": ROOT / "tasks" / "wnut16_ner.yaml", "classify": ROOT / "tasks" / "rotten_tomatoes.yaml"}


@pytest.mark.parametrize("extra, lacking", [
    ([], None),
    (["from_scratch=true"], "give init=<checkpoint> \\(and no from_scratch\\)"),
    (["data.loss=focal"], "no counterpart for command line: data.loss='focal' \\(nlu's own; remove it"),
    (["training.learning_rate=auto"], "command line: training.learning_rate=auto \\(nlu.recipes' choice"),
    (["training.early_stopping_patience=3"], "command line: training.early_stopping_patience=3"),
    (["model.hidden_dropout_prob=0.2"], "command line: model.hidden_dropout_prob \\(the Trainer keeps"),
    (["framework=keras"], "framework must be one of nlu, transformers; got 'keras'"),
])
def test_what_the_trainer_cannot_do_is_refused_before_the_run_folder_exists(extra, lacking, tiny_bert, tmp_path):
    settings = load_settings(TASK_FILES["classify"], [*same_work("classify", tiny_bert, tmp_path, "transformers"), *extra],
                             task="classify")
    if lacking is None:
        resolve(settings)  # the shared budget itself is one the Trainer can run
        return
    with pytest.raises(ConfigError, match=lacking):
        run(settings)
    assert not (tmp_path / "transformers").exists()


def test_the_trainer_is_refused_under_torchrun_before_anything_is_written(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    settings = load_settings(TASK_FILES["ner"], same_work("ner", tiny_bert, tmp_path, "transformers"), task="ner")
    with pytest.raises(ConfigError, match="runs in one process: start it without torchrun"):
        resolve(settings)


def test_an_nlu_checkpoint_is_refused_as_the_trainers_init(wnut_tokenizer, tmp_path):
    model = random_tagger(wnut_tokenizer, tmp_path / "nlu-model")
    settings = load_settings(TASK_FILES["ner"], [f"init={model}", "framework=transformers",
                                                  "training.early_stopping_patience=0", "training.learning_rate=1e-3",
                                                  f"training.output_dir={tmp_path / 'run'}"], task="ner")
    with pytest.raises(ConfigError, match="reads transformers checkpoints.*`nlu export`"):
        run(settings)


def test_the_trainer_truncates_a_long_sentence_counts_it_and_predicts_its_cut_words_o(tiny_bert):
    """The Trainer has no windows: words past max_length get no label position, are predicted O and
    the sentence is counted as cut; a short sentence keeps every word."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from nlu.data.ner import NerSentence
    from nlu.reference import ner_inputs

    long = NerSentence(["paris"] * 40, ["B-geo-loc"] * 40, "long.conll", 1)
    short = NerSentence(["paris", "is", "big"], ["B-geo-loc", "O", "O"], "short.conll", 1)
    splits = SimpleNamespace(train=[long, short], dev=[short], test=[long, short])
    encoded = ner_inputs(splits, AutoTokenizer.from_pretrained(tiny_bert), 16, "strict")
    assert encoded.cut == {"train": 1, "dev": 0, "test": 1}
    width = max(len(row) for row in encoded.datasets["test"]["input_ids"])
    logits = np.zeros((2, width, len(encoded.labels)), dtype=np.float32)
    logits[:, :, encoded.labels.index("B-geo-loc")] = 1.0  # every position says B-geo-loc
    tags = encoded.predictions(logits, "test")
    kept = sum(tag == "B-geo-loc" for tag in tags[0])
    assert 0 < kept < 40 and tags[0] == ["B-geo-loc"] * kept + ["O"] * (40 - kept)
    assert tags[1] == ["B-geo-loc"] * 3


def test_the_trainer_cuts_only_long_text_pairs_and_counts_them(tiny_bert):
    """Classification inputs for the Trainer: pairs longer than max_length are truncated exactly as the
    tokenizer truncates (longest first) and counted per split; the others are left as encoded."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from nlu.data.classification import LabelMap, TextExample
    from nlu.reference import classification_inputs

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    examples = [TextExample("paris is big " * n, "so is rome " * (8 - n), "a", "pairs.csv", n + 1)
                for n in range(8)] + [TextExample("rome", "paris", "b", "pairs.csv", 10)]
    splits = SimpleNamespace(train=examples, dev=examples[-1:], test=[], label_map=LabelMap(["a", "b"]))
    encoded = classification_inputs(splits, tokenizer, 20)
    whole = tokenizer([e.text for e in examples], [e.text_pair for e in examples])["input_ids"]
    assert encoded.cut == {"train": sum(len(row) > 20 for row in whole), "dev": 0, "test": 0} and encoded.cut["train"] > 0
    expected = tokenizer([e.text for e in examples], [e.text_pair for e in examples], truncation=True, max_length=20)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert encoded.datasets["train"][key] == expected[key]
    assert encoded.datasets["train"]["labels"] == [0] * 8 + [1]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["ner", "classify"])
def test_both_frameworks_train_the_same_tokens_and_are_scored_alike(task, tiny_bert, tmp_path, one_thread):
    """One budget on a tiny BERT through nlu.runs.run, once per framework: the same steps over the
    same real tokens, every test record predicted, and the Trainer's test figure re-computed from
    its own predictions file (nlu's evaluation wrote it)."""
    records = {framework: run(load_settings(TASK_FILES[task], same_work(task, tiny_bert, tmp_path, framework), task=task))
               for framework in ("nlu", "transformers")}
    ours, theirs = (records[framework].summary for framework in ("nlu", "transformers"))
    assert theirs["framework"] == "transformers" and "framework" not in ours
    assert ours["steps"] == theirs["steps"] == 3  # 48 training records, batch 16, one epoch
    assert round(ours["tokens_per_second"] * ours["train_seconds"]) == round(
        theirs["tokens_per_second"] * theirs["train_seconds"]) > 0
    test = tmp_path / "data" / f"test{'.conll' if task == 'ner' else '.csv'}"
    folder = records["transformers"].output_dir
    if task == "ner":
        blocks = [[line.split("\t") for line in block.splitlines()]
                  for block in (folder / "test" / "predictions.conll").read_text().split("\n\n") if block.strip()]
        assert [[row[0] for row in block] for block in blocks] == [s.words for s in read_ner_file(test)]
        assert theirs["test_f1"] == pytest.approx(seqeval_f1([[row[1] for row in b] for b in blocks],
                                                             [[row[2] for row in b] for b in blocks], mode="strict",
                                                             scheme=IOB2, zero_division=0))
    else:
        with open(folder / "test" / "predictions.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert [row["label"] for row in rows] == [e.label for e in read_table(test)]
        assert theirs["test_macro_f1"] == pytest.approx(f1_score([r["label"] for r in rows], [r["predicted"] for r in rows],
                                                                 average="macro", zero_division=0))
    # The Trainer's best model, read back by nlu (nlu evaluate on the run folder), predicts what the Trainer did.
    assert nlu_main(["evaluate", task, "--model", str(folder), "--data", str(test), "--out", str(tmp_path / "ev")]) == 0
    name = "predictions.conll" if task == "ner" else "predictions.csv"
    if task == "ner":
        assert (tmp_path / "ev" / name).read_text() == (folder / "test" / name).read_text()
    else:
        read = lambda path: list(csv.DictReader(open(path, newline="", encoding="utf-8")))  # noqa: E731
        for mine, trainer in zip(read(tmp_path / "ev" / name), read(folder / "test" / name), strict=True):
            assert mine["predicted"] == trainer["predicted"]
            assert all(abs(float(mine[key]) - float(trainer[key])) <= 2e-4 for key in mine if key.startswith("p("))
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert {entry["split"] for entry in log} == {"train", "eval"} and (folder / "report.md").exists()
    again = run(load_settings(TASK_FILES[task], same_work(task, tiny_bert, tmp_path, "transformers"), task=task))
    assert again.reused and again.summary == theirs


@pytest.mark.slow
def test_a_trainer_run_stopped_after_a_checkpoint_resumes_to_the_same_result(tiny_bert, tmp_path, one_thread):
    """A seed fixes a Trainer run; and as if killed after its step-2 checkpoint, the run resumes there
    (the Trainer's own resume) and ends with the uninterrupted run's steps, real-token count and test
    predictions."""
    overrides = [*same_work("classify", tiny_bert, tmp_path, "transformers"), "training.max_steps=4",
                 "training.eval_every=2", "training.keep_checkpoints=2", "training.keep_finished_checkpoints=true"]
    whole = run(load_settings(TASK_FILES["classify"], overrides, task="classify"))
    folder = whole.output_dir
    predictions = (folder / "test" / "predictions.csv").read_text()
    twin = run(load_settings(TASK_FILES["classify"], [*overrides, f"training.output_dir={tmp_path / 'twin'}"],
                             task="classify"))  # the same seed elsewhere: the same run, new head included
    assert (twin.output_dir / "log.jsonl").read_text() == (folder / "log.jsonl").read_text()
    checkpoints = sorted((folder / "transformers").glob("checkpoint-*"))
    assert [path.name for path in checkpoints] == ["checkpoint-2", "checkpoint-4"]
    shutil.rmtree(checkpoints[-1])
    for path in ("summary.json", "test", "model"):
        shutil.rmtree(folder / path) if (folder / path).is_dir() else (folder / path).unlink()
    resumed = run(load_settings(TASK_FILES["classify"], overrides, task="classify"))
    assert not resumed.reused and resumed.summary["steps"] == 4
    tokens = {name: record.summary["tokens_per_second"] * record.summary["train_seconds"]
              for name, record in (("whole", whole), ("resumed", resumed))}
    assert round(tokens["resumed"]) == round(tokens["whole"]) > 0
    assert (folder / "test" / "predictions.csv").read_text() == predictions


@pytest.mark.slow
def test_a_sweep_puts_the_trainer_beside_nlu_each_run_in_its_own_process(tiny_bert, tmp_path, monkeypatch):
    """framework as a row, isolate, extra columns: peak memory per run, kept for a reused run, and
    the paired bootstrap of nlu against the Trainer on the same test records."""
    monkeypatch.chdir(ROOT)
    overrides = {key: value for key, value in (item.split("=", 1) for item in
                                               same_work("classify", tiny_bert, tmp_path, "nlu")[2:])
                 if key != "training.output_dir"}
    sweep = Sweep(name="vs", config="tasks/rotten_tomatoes.yaml", seeds=[1],
                  rows={"Trainer": {"framework": "transformers"}, "nlu": {}}, overrides={"init": str(tiny_bert), **overrides},
                  columns=["tokens_per_second", "process.peak_rss_mib"], isolate=True)
    results = run_sweep(sweep, "classify", tmp_path / "runs")
    peaks = {row: entry["runs"][0]["figures"]["process.peak_rss_mib"] for row, entry in results["rows"].items()}
    assert all(100 < peak < 8000 for peak in peaks.values()), peaks  # torch alone is over 100 MiB
    assert results["bootstrap"]["nlu"]["test_examples"] == 24
    assert "| tokens_per_second | process.peak_rss_mib |" in render_sweep(results).splitlines()[4]  # the table's header
    monkeypatch.setattr("nlu.runs.ProcessPoolExecutor", None)  # a finished run is read back here: no process
    again = run_sweep(sweep, "classify", tmp_path / "runs")
    assert all(entry["runs"][0]["reused"] for entry in again["rows"].values())
    assert {row: entry["runs"][0]["figures"]["process.peak_rss_mib"] for row, entry in again["rows"].items()} == peaks
